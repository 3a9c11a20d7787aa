-- Each failed row keeps two places (contract §6): `row_number`, the row as a spreadsheet shows the file (the
-- header is row 1, one row per record however many line breaks its quoted cells hold, blank lines counted),
-- and `line_number`, the physical line a CSV record starts on, for text editors. XLSX has no lines: NULL.
ALTER TABLE import_errors ADD COLUMN line_number bigint;

-- Until now a CSV error's row_number was the line its record started on, so that is its line_number. (Its
-- row_number keeps the old count: the file is not read again to renumber it.)
UPDATE import_errors e SET line_number = e.row_number
FROM imports i
WHERE i.tenant_id = e.tenant_id AND i.id = e.import_id AND i.file_format = 'csv';
