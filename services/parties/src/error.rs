//! The parties service's refusals: each once, with its code and the reason callers branch on.
