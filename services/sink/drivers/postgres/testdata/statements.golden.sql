-- create table
CREATE TABLE IF NOT EXISTS "sink"."orders" ("tenant" text, "id" bigint, "Odd ""name""" numeric(10,2), "payload" jsonb, "_rosetta_lsn" bigint NOT NULL, "_rosetta_seq" bigint NOT NULL, PRIMARY KEY ("tenant", "id"));

-- create tombstones
CREATE TABLE IF NOT EXISTS "_rosetta"."tomb_orders_47180f07b796" ("tenant" text, "id" bigint, "_rosetta_lsn" bigint NOT NULL, "_rosetta_seq" bigint NOT NULL, PRIMARY KEY ("tenant", "id"));

-- add column
ALTER TABLE "sink"."orders" ADD COLUMN IF NOT EXISTS "payload" jsonb;

-- create stage
CREATE TEMPORARY TABLE "_rosetta_stage_1" ("tenant" text, "id" bigint, "Odd ""name""" numeric(10,2), "payload" jsonb, "_rosetta_del" boolean NOT NULL, "_rosetta_lsn" bigint NOT NULL, "_rosetta_seq" bigint NOT NULL, "_rosetta_unchanged" int[], "_rosetta_fb" boolean NOT NULL, "_rosetta_fb_1" text, "_rosetta_fb_2" bigint) ON COMMIT DELETE ROWS;

-- copy
COPY "_rosetta_stage_1" ("tenant", "id", "Odd ""name""", "payload", "_rosetta_del", "_rosetta_lsn", "_rosetta_seq", "_rosetta_unchanged", "_rosetta_fb", "_rosetta_fb_1", "_rosetta_fb_2") FROM STDIN;

-- fill
UPDATE "_rosetta_stage_1" AS s SET "Odd ""name""" = CASE WHEN 3 = ANY(s."_rosetta_unchanged") THEN t."Odd ""name""" ELSE s."Odd ""name""" END, "payload" = CASE WHEN 4 = ANY(s."_rosetta_unchanged") THEN t."payload" ELSE s."payload" END, "_rosetta_unchanged" = NULL FROM "sink"."orders" AS t WHERE s."_rosetta_fb" AND t."tenant" = s."_rosetta_fb_1" AND t."id" = s."_rosetta_fb_2";

-- truncate rows
DELETE FROM "sink"."orders" AS t WHERE (t."_rosetta_lsn", t."_rosetta_seq") < ($1, $2);

-- truncate mark
UPDATE "_rosetta"."tables" AS w SET truncate_lsn = $1, truncate_seq = $2 WHERE w.schema_name = $3 AND w.table_name = $4 AND (w.truncate_lsn, w.truncate_seq) < ($1, $2);

-- truncate tombstones
DELETE FROM "_rosetta"."tomb_orders_47180f07b796" AS x WHERE (x."_rosetta_lsn", x."_rosetta_seq") < ($1, $2);

-- delete rows
DELETE FROM "sink"."orders" AS t USING "_rosetta_stage_1" AS s WHERE s."_rosetta_del" AND t."tenant" = s."tenant" AND t."id" = s."id" AND (t."_rosetta_lsn", t."_rosetta_seq") < (s."_rosetta_lsn", s."_rosetta_seq");

-- tombstone
INSERT INTO "_rosetta"."tomb_orders_47180f07b796" AS x ("tenant", "id", "_rosetta_lsn", "_rosetta_seq") SELECT s."tenant", s."id", s."_rosetta_lsn", s."_rosetta_seq" FROM "_rosetta_stage_1" AS s WHERE s."_rosetta_del" AND NOT EXISTS (SELECT 1 FROM "sink"."orders" AS t WHERE t."tenant" = s."tenant" AND t."id" = s."id") ON CONFLICT ("tenant", "id") DO UPDATE SET "_rosetta_lsn" = EXCLUDED."_rosetta_lsn", "_rosetta_seq" = EXCLUDED."_rosetta_seq" WHERE (x."_rosetta_lsn", x."_rosetta_seq") < (EXCLUDED."_rosetta_lsn", EXCLUDED."_rosetta_seq");

-- update
UPDATE "sink"."orders" AS t SET "Odd ""name""" = CASE WHEN 3 = ANY(s."_rosetta_unchanged") THEN t."Odd ""name""" ELSE s."Odd ""name""" END, "payload" = CASE WHEN 4 = ANY(s."_rosetta_unchanged") THEN t."payload" ELSE s."payload" END, "_rosetta_lsn" = s."_rosetta_lsn", "_rosetta_seq" = s."_rosetta_seq" FROM "_rosetta_stage_1" AS s WHERE NOT s."_rosetta_del" AND t."tenant" = s."tenant" AND t."id" = s."id" AND (t."_rosetta_lsn", t."_rosetta_seq") < (s."_rosetta_lsn", s."_rosetta_seq");

-- insert
INSERT INTO "sink"."orders" ("tenant", "id", "Odd ""name""", "payload", "_rosetta_lsn", "_rosetta_seq") SELECT s."tenant", s."id", s."Odd ""name""", s."payload", s."_rosetta_lsn", s."_rosetta_seq" FROM "_rosetta_stage_1" AS s WHERE NOT s."_rosetta_del" AND NOT EXISTS (SELECT 1 FROM "sink"."orders" AS t WHERE t."tenant" = s."tenant" AND t."id" = s."id") AND NOT EXISTS (SELECT 1 FROM "_rosetta"."tomb_orders_47180f07b796" AS x WHERE x."tenant" = s."tenant" AND x."id" = s."id" AND (x."_rosetta_lsn", x."_rosetta_seq") >= (s."_rosetta_lsn", s."_rosetta_seq")) AND (s."_rosetta_lsn", s."_rosetta_seq") > (SELECT w.truncate_lsn, w.truncate_seq FROM "_rosetta"."tables" AS w WHERE w.schema_name = $1 AND w.table_name = $2);

-- untomb
DELETE FROM "_rosetta"."tomb_orders_47180f07b796" AS x USING "_rosetta_stage_1" AS s WHERE NOT s."_rosetta_del" AND x."tenant" = s."tenant" AND x."id" = s."id" AND (x."_rosetta_lsn", x."_rosetta_seq") < (s."_rosetta_lsn", s."_rosetta_seq");

