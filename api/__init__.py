"""tablebeat's REST API (FastAPI): ``tablebeat api``, or ``uvicorn api.app:app``.

Every endpoint calls :mod:`scheduler.service`, the service layer the CLI shares.
"""
