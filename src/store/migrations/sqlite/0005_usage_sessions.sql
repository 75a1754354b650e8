-- Agent sessions and routing (issue 15): how the requested name became
-- the configured model that served it, and the classifier's scene.
ALTER TABLE usage ADD COLUMN routed_model TEXT;
ALTER TABLE usage ADD COLUMN routed_by TEXT;
ALTER TABLE usage ADD COLUMN scene TEXT;
-- One session's requests are read by its id (`/api/usage/sessions/{id}`).
-- Partial: rows without a session (most API traffic) cost the writer no
-- index entry.
CREATE INDEX usage_session ON usage (session_id, ts) WHERE session_id IS NOT NULL;
