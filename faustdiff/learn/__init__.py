"""Stage 5, learning parameters: losses with exact ∂L/∂y, optimisers, the training loop.
May import `backend` and everything below it, and `audio_io`; never `api` or `cli`."""

