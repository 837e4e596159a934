"""The ground floor: process settings, the domain's types, French text rules, the Prometheus
metrics every layer records and the migration guide's KPI thresholds.

Everything else imports from here; this package imports nothing of the project's.
"""
