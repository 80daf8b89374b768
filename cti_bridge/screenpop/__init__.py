"""Screen-pop and ticket notices: payloads and the outputs that deliver them."""
