-- Imports: the file's header (column names as stored in import_errors.row_data, in the file's order, so
-- errors.csv can give the failed rows back as they were), what was detected while reading, and one error row
-- per failed file row: a retry updates that row in place, and the unique key makes a row's error impossible
-- to record twice.

ALTER TABLE imports ADD COLUMN header jsonb;
ALTER TABLE imports ADD COLUMN unmapped_columns jsonb;
ALTER TABLE imports ADD COLUMN detected jsonb;

ALTER TABLE import_errors ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();
ALTER TABLE import_errors ADD CONSTRAINT import_errors_row_key UNIQUE (import_id, row_number);
-- The retry's work list and the `resolved` filter.
CREATE INDEX import_errors_unresolved_idx ON import_errors (tenant_id, import_id, row_number) WHERE resolved_at IS NULL;

-- Projects are matched by client and name on import (duplicates and upsert).
CREATE INDEX projects_client_name_idx ON projects (tenant_id, client_id, lower(name)) WHERE deleted_at IS NULL;
