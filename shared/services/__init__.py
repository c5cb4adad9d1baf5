"""Operations: plain functions that change state. They take the actor, flush, audit, and never commit."""
