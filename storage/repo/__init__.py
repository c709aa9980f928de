"""The pieces `storage.repository.Repository` is built from: one mixin a concern."""
