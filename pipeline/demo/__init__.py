"""`pinpipe demo`: the whole batch path once, above the stack and the stages it drives."""
