"""Qt widgets only: they show what `app` hands them and emit signals."""
