"""Provider simulators: small HTTP apps that behave like the real provider APIs (demo and tests)."""
