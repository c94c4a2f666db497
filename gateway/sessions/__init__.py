"""Sessions: the model, its encrypted cookie and Redis stores, and refresh coordination."""
