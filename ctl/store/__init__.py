"""The SQL store: models, engine and migrations, repositories."""
