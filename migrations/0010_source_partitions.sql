-- The number of partitions a source's changes are spread over by a hash
-- of their key (contracts/README.md "Partitions"): one durable consumer
-- per pipeline destination and partition. Sources from before this
-- migration have one, which is what they published on.
ALTER TABLE sources
    ADD COLUMN partitions integer NOT NULL DEFAULT 1 CHECK (partitions BETWEEN 1 AND 64);
