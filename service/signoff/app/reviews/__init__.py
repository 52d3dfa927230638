"""The review desk: open, list, watch, decide, batch review, the console's reads, and what
a review change is written as."""
