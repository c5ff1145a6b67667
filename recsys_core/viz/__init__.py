"""Plotly figure builders: pure functions, data in, figure out (one module per page area)."""
