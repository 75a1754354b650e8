//! "Test" buttons: a tiny request to a model's chain or one target.
