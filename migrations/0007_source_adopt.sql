-- Slots and publications an admin created on the source and hands to
-- Rosetta (docs/security.md "Slots and publications"): Rosetta uses an
-- adopted slot as it is, never alters an adopted publication (a DBA
-- manages its tables), and drops neither when the source is deleted.
-- Sources from before this migration keep the earlier behaviour: Rosetta
-- manages both.
ALTER TABLE sources
    ADD COLUMN adopt_slot boolean NOT NULL DEFAULT false,
    ADD COLUMN adopt_publication boolean NOT NULL DEFAULT false;
