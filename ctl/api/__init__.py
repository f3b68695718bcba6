"""The HTTP API of `ctl serve` (FastAPI on uvicorn, in serve's own asyncio loop).

Resources only parse, call one use case and render: the rules — who may listen, whisper,
barge, see whom — live in ctl.services, as for the CLI and the feature codes. Errors are
`application/problem+json` with the CLI's error kinds.
"""
