//! C2SP signed notes (in progress).
