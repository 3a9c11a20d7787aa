-- Week buckets for the lead and activity rollups (grain 3: weeks from Monday, in the tenant's time zone).
--
-- A date range reads whole months in its middle and, at its ends, whole weeks and days, each either the part
-- inside the range or a whole bucket minus the part outside (`shared/src/db/reports/slices.rs`): a month's end
-- no longer costs up to 30 day buckets. The capture functions gain the week bucket, and the weeks of the
-- records there already are counted here, from the records themselves (no delta ever held a week).

ALTER TABLE lead_rollup DROP CONSTRAINT lead_rollup_grain_check;
ALTER TABLE lead_rollup ADD CONSTRAINT lead_rollup_grain_check CHECK (grain IN (0, 1, 2, 3));
ALTER TABLE activity_rollup DROP CONSTRAINT activity_rollup_grain_check;
ALTER TABLE activity_rollup ADD CONSTRAINT activity_rollup_grain_check CHECK (grain IN (0, 1, 2, 3));

CREATE OR REPLACE FUNCTION lead_rollup_capture() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
DECLARE
    changes text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT n.*, 1 AS sign FROM new_rows n'
        WHEN 'UPDATE' THEN 'SELECT n.*, 1 AS sign FROM new_rows n UNION ALL SELECT o.*, -1 FROM old_rows o'
        ELSE 'SELECT o.*, -1 AS sign FROM old_rows o'
    END;
BEGIN
    EXECUTE format(
        $sql$
        INSERT INTO lead_rollup_deltas (tenant_id, grain, bucket, created_by, assigned_to_user_id, status, lead_source,
                                        leads, timed_conversions, conversion_seconds)
        SELECT c.tenant_id, b.grain, b.bucket, c.created_by, c.assigned_to_user_id, c.status, c.lead_source,
               sum(c.sign), sum(c.sign * (c.converted_at IS NOT NULL)::int),
               sum(c.sign * COALESCE(extract(epoch FROM c.converted_at - c.created_at), 0))
        FROM (%s) c
        JOIN tenants t ON t.id = c.tenant_id
        CROSS JOIN LATERAL (SELECT (c.created_at AT TIME ZONE t.time_zone)::date AS day) d
        CROSS JOIN LATERAL (VALUES (0::smallint, DATE '0001-01-01'),
                                   (1::smallint, date_trunc('month', d.day)::date),
                                   (2::smallint, d.day),
                                   (3::smallint, date_trunc('week', d.day)::date)) b (grain, bucket)
        WHERE c.deleted_at IS NULL
        GROUP BY 1, 2, 3, 4, 5, 6, 7
        HAVING sum(c.sign) <> 0 OR sum(c.sign * (c.converted_at IS NOT NULL)::int) <> 0
            OR sum(c.sign * COALESCE(extract(epoch FROM c.converted_at - c.created_at), 0)) <> 0
        $sql$, changes);
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION activity_rollup_capture() RETURNS trigger
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, public
AS $$
DECLARE
    changes text := CASE TG_OP
        WHEN 'INSERT' THEN 'SELECT n.*, 1 AS sign FROM new_rows n'
        WHEN 'UPDATE' THEN 'SELECT n.*, 1 AS sign FROM new_rows n UNION ALL SELECT o.*, -1 FROM old_rows o'
        ELSE 'SELECT o.*, -1 AS sign FROM old_rows o'
    END;
BEGIN
    EXECUTE format(
        $sql$
        INSERT INTO activity_rollup_deltas (tenant_id, metric, grain, bucket, user_id, records)
        SELECT c.tenant_id, %s::smallint, b.grain, b.bucket, c.%I, sum(c.sign)
        FROM (%s) c
        JOIN tenants t ON t.id = c.tenant_id
        CROSS JOIN LATERAL (SELECT (c.%I AT TIME ZONE t.time_zone)::date AS day) d
        CROSS JOIN LATERAL (VALUES (0::smallint, DATE '0001-01-01'),
                                   (1::smallint, date_trunc('month', d.day)::date),
                                   (2::smallint, d.day),
                                   (3::smallint, date_trunc('week', d.day)::date)) b (grain, bucket)
        WHERE c.deleted_at IS NULL AND c.%I IS NOT NULL
        GROUP BY 1, 2, 3, 4, 5
        HAVING sum(c.sign) <> 0
        $sql$, TG_ARGV[0]::smallint, TG_ARGV[1], changes, TG_ARGV[2], TG_ARGV[1]);
    RETURN NULL;
END
$$;

INSERT INTO lead_rollup (tenant_id, grain, bucket, created_by, assigned_to_user_id, status, lead_source, leads,
                         timed_conversions, conversion_seconds)
SELECT l.tenant_id, 3::smallint, date_trunc('week', (l.created_at AT TIME ZONE t.time_zone)::date)::date,
       l.created_by, l.assigned_to_user_id, l.status, l.lead_source, count(*), count(l.converted_at),
       COALESCE(sum(extract(epoch FROM l.converted_at - l.created_at)), 0)
FROM leads l
JOIN tenants t ON t.id = l.tenant_id
WHERE l.deleted_at IS NULL
GROUP BY 1, 2, 3, 4, 5, 6, 7;

INSERT INTO activity_rollup (tenant_id, metric, grain, bucket, user_id, records)
SELECT x.tenant_id, x.metric, 3::smallint, date_trunc('week', (x.dated AT TIME ZONE t.time_zone)::date)::date,
       x.user_id, count(*)
FROM (SELECT tenant_id, 1::smallint AS metric, assigned_to_user_id AS user_id, created_at AS dated FROM leads
          WHERE deleted_at IS NULL
      UNION ALL SELECT tenant_id, 2::smallint, assigned_to_user_id, created_at FROM clients WHERE deleted_at IS NULL
      UNION ALL SELECT tenant_id, 3::smallint, user_id, contact_date FROM interactions WHERE deleted_at IS NULL
      UNION ALL SELECT tenant_id, 4::smallint, created_by, created_at FROM projects WHERE deleted_at IS NULL) x
JOIN tenants t ON t.id = x.tenant_id
WHERE x.user_id IS NOT NULL
GROUP BY 1, 2, 3, 4, 5;
