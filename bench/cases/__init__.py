"""One module per target; each exposes ``run(ctx: CaseContext) -> dict`` of measured numbers."""
