"""The pure core: state machine, planner and retry policy. No I/O below this line."""
