"""The ground floor: process settings, the domain's types and French text rules.

Everything else imports from here; this package imports nothing of the project's.
"""
