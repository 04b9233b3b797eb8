"""Issue 3's contract, checked against real servers on 127.0.0.1."""
