"""Postgres: the embedded server or DATABASE_URL, the pool, migrations, and every query.

All SQL of the application lives in this package (and in `database/`), parameterised.
"""
