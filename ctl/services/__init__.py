"""The rules of the product, PBX-neutral: they talk to a Switch and the store."""
