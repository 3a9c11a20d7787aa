-- Hardening against hostile callers (issue 9).

-- An email is unique within a tenant, not across tenants: a global index let one tenant's admin learn that an
-- address was in use elsewhere (409 "already exists") and squat addresses another company would need. Login
-- finds every user with the email and the password decides; `tenant_id` in the login body picks one when the
-- same email and password open more than one workspace.
DROP INDEX users_email_key;
CREATE UNIQUE INDEX users_email_key ON users (tenant_id, lower(email));
CREATE INDEX users_login_email_idx ON users (lower(email));

-- Tokens carry the version they were issued under; logout, deactivation and reactivation bump it, so every
-- token issued before stops working at once.
ALTER TABLE users ADD COLUMN token_version integer NOT NULL DEFAULT 0;

-- Probes run on a queue of their own, so operators' checks never hold up a tenant's imports.
ALTER TABLE jobs DROP CONSTRAINT jobs_queue_check;
ALTER TABLE jobs ADD CONSTRAINT jobs_queue_check CHECK (queue IN ('imports', 'exports', 'reports', 'emails', 'system'));

-- Uploaded file names are stored cleaned (no path, no control or bidirectional-override characters, no
-- markup); the name as the caller sent it is kept escaped, for display only.
ALTER TABLE imports ADD COLUMN original_file_name text;
