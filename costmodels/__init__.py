"""Cost models: XGBoost ranking of (architecture, schedule) pairs; memory, energy and roofline models."""
