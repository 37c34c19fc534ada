"""tablebeat's REST API (FastAPI): ``tablebeat api``, or ``uvicorn api.app:app``.

Every endpoint calls :mod:`service.tasks`, the service layer the CLI shares.
"""
