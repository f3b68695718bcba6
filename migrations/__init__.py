"""Alembic migrations of ctl's store (installed as the package ctl.migrations)."""
