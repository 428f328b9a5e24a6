// Request and response shapes of the Rosetta REST API. contracts/openapi.yaml
// is the source of truth: schemas.test.ts converts each schema here to JSON
// Schema and checks its properties, required fields and enums against the
// OpenAPI component of the same name, so a change to either side that the
// other does not follow fails the console's unit tests.
import { z } from "zod";

const id = z.number().int();
const dateTime = z.string();
const nullableDateTime = z.string().nullable();

export const ErrorBody = z.object({ error: z.string(), field: z.string().optional() });

export const page = <T extends z.ZodType>(item: T) =>
  z.object({ items: z.array(item), total: z.number().int(), limit: z.number().int(), offset: z.number().int() });

export const Health = z.object({
  status: z.enum(["ok", "degraded"]),
  checks: z.record(z.string(), z.object({ status: z.enum(["ok", "error", "disabled"]), error: z.string().optional() })),
});

export const Whoami = z.object({ name: z.string(), role: z.enum(["viewer", "operator", "admin"]) });
export type Whoami = z.infer<typeof Whoami>;
export type Role = Whoami["role"];

export const WALSample = z.object({
  source_id: id,
  at: dateTime,
  wal_lsn: z.string().nullable(),
  retained_bytes: z.number().int().nullable(),
  wal_status: z.enum(["reserved", "extended", "unreserved", "lost"]).nullable(),
  safe_wal_size: z.number().int().nullable(),
  error: z.string().optional(),
});
export const WALSamples = z.object({ samples: z.array(WALSample) });
export type WALSample = z.infer<typeof WALSample>;

export const sslmodes = ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"] as const;
export const channelBindings = ["disable", "prefer", "require"] as const;

export const SourceRequest = z.object({
  name: z.string().trim().min(1, "name is required").max(200),
  host: z.string().trim().min(1, "host is required").max(255),
  port: z.number({ error: "port must be a number" }).int().min(1).max(65535),
  database: z.string().trim().min(1, "database is required").max(63),
  user: z.string().trim().min(1, "user is required").max(63),
  password: z.string().nullable().optional(),
  publication: z.string().max(63).optional(),
  slot: z
    .string()
    .regex(/^[a-z0-9_]{1,63}$/, "slot: lower-case letters, digits and _ only, at most 63")
    .optional(),
  sslmode: z.enum(sslmodes).optional(),
  sslrootcert: z.string().max(65536).optional(),
  sslcert: z.string().max(65536).optional(),
  sslkey: z.string().max(65536).nullable().optional(),
  require_auth: z.string().optional(),
  channel_binding: z.union([z.literal(""), z.enum(channelBindings)]).optional(),
  adopt_slot: z.boolean().optional(),
  adopt_publication: z.boolean().optional(),
  partitions: z.number().int().min(1).max(64).optional(),
});
export type SourceRequest = z.infer<typeof SourceRequest>;

export const Source = z.object({
  id,
  name: z.string(),
  host: z.string(),
  port: z.number().int(),
  database: z.string(),
  user: z.string(),
  password_set: z.boolean(),
  publication: z.string(),
  slot: z.string(),
  sslmode: z.string(),
  sslrootcert: z.string(),
  sslcert: z.string(),
  sslkey_set: z.boolean(),
  require_auth: z.string(),
  channel_binding: z.string(),
  adopt_slot: z.boolean(),
  adopt_publication: z.boolean(),
  partitions: z.number().int(),
  created_at: dateTime,
  updated_at: dateTime,
});
export type Source = z.infer<typeof Source>;

export const destinationTypeNames = ["postgres", "snowflake", "duckdb"] as const;

export const DestinationRequest = z.object({
  name: z.string().trim().min(1, "name is required").max(200),
  type: z.enum(destinationTypeNames),
  config: z.record(z.string(), z.unknown()),
});
export type DestinationRequest = z.infer<typeof DestinationRequest>;

export const Destination = z.object({
  id,
  name: z.string(),
  type: z.enum(destinationTypeNames),
  config: z.record(z.string(), z.unknown()),
  password_set: z.boolean().optional(),
  private_key_set: z.boolean().optional(),
  private_key_passphrase_set: z.boolean().optional(),
  sslkey_set: z.boolean().optional(),
  created_at: dateTime,
  updated_at: dateTime,
});
export type Destination = z.infer<typeof Destination>;

// A destination type's config fields, as GET /destination-types lists them.
export const DestinationField = z.object({
  name: z.string(),
  kind: z.enum(["string", "port", "duration", "bool", "batch_size"]),
  required: z.boolean(),
  secret: z.boolean(),
  default: z.union([z.string(), z.number(), z.boolean()]).nullable(),
  one_of: z.array(z.string()),
  description: z.string(),
});
export type DestinationField = z.infer<typeof DestinationField>;
export const DestinationType = z.object({ type: z.enum(destinationTypeNames), fields: z.array(DestinationField) });
export type DestinationType = z.infer<typeof DestinationType>;
export const DestinationTypes = z.object({ items: z.array(DestinationType) });

export const DestinationCheck = z.object({ ok: z.boolean(), checked: z.enum(["connected", "config"]) });

export const SourceTable = z.object({
  table: z.string(),
  replica_identity: z.enum(["default", "full", "index", "nothing"]),
  primary_key: z.array(z.string()),
  identity_columns: z.array(z.string()),
  ok: z.boolean(),
  problem: z.string(),
});
export type SourceTable = z.infer<typeof SourceTable>;
export const SourceTables = z.object({ items: z.array(SourceTable) });

export const PipelineRequest = z.object({
  name: z.string().trim().min(1, "name is required").max(200),
  source_id: id,
  destination_ids: z.array(id).min(1, "pick at least one destination"),
  tables: z.array(z.string()).min(1, "pick at least one table"),
  snapshot: z.boolean().optional(),
});
export type PipelineRequest = z.infer<typeof PipelineRequest>;

export const Pipeline = z.object({
  id,
  name: z.string(),
  source_id: id,
  destination_ids: z.array(id),
  tables: z.array(z.string()),
  status: z.enum(["START", "PAUSE"]),
  created_at: dateTime,
  updated_at: dateTime,
});
export type Pipeline = z.infer<typeof Pipeline>;

export const DLQTable = z.object({
  destination_id: id,
  table: z.string(),
  depth: z.number().int(),
  oldest_id: z.string(),
  oldest_at: nullableDateTime,
});
export const DLQSummary = z.object({
  enabled: z.boolean(),
  depth: z.number().int(),
  oldest_at: nullableDateTime,
  tables: z.array(DLQTable),
  error: z.string().optional(),
});

export const healthValues = ["UNKNOWN", "HEALTHY", "LAGGING", "ERROR", "PAUSED"] as const;
export type HealthValue = (typeof healthValues)[number];

export const DestinationStatus = z.object({
  destination_id: id,
  name: z.string(),
  type: z.string(),
  health: z.enum(healthValues),
  reason: z.string(),
  last_error: z.string(),
  last_applied_at: nullableDateTime,
  updated_at: dateTime,
  lag_seconds: z.number().nullable(),
  lag_bytes: z.number().int().nullable(),
  pending: z.number().int().nullable(),
  throughput: z.number(),
  applied_commit_lsn: z.string(),
  applied_commit_time: nullableDateTime,
  source_lsn: z.string(),
  dlq: DLQSummary,
});
export type DestinationStatus = z.infer<typeof DestinationStatus>;

export const PipelineDestinationStatus = DestinationStatus.extend({
  pipeline_id: id,
  pipeline_name: z.string(),
  pipeline_status: z.enum(["START", "PAUSE"]),
  source_id: id,
});
export type PipelineDestinationStatus = z.infer<typeof PipelineDestinationStatus>;

export const SourceState = z.object({
  state: z.string(),
  last_error: z.string(),
  confirmed_lsn: z.string(),
  updated_at: nullableDateTime,
});
export const PipelineDetail = Pipeline.extend({ source_state: SourceState, destinations: z.array(DestinationStatus) });
export type PipelineDetail = z.infer<typeof PipelineDetail>;

export const filterOps = ["=", "!=", "<", "<=", ">", ">=", "in", "not in", "is null", "is not null", "like"] as const;
export const BackfillFilter = z.object({
  column: z.string().min(1, "column is required"),
  op: z.enum(filterOps),
  value: z.unknown().optional(),
});
export type BackfillFilter = z.infer<typeof BackfillFilter>;
export const BackfillRequest = z.object({
  table: z.string().min(1, "pick a table"),
  destination_ids: z.array(id).optional(),
  filters: z.array(BackfillFilter).max(5, "at most 5 filters").optional(),
  batch_size: z.number().int().min(1).max(100000).optional(),
});
export type BackfillRequest = z.infer<typeof BackfillRequest>;

export const backfillStatuses = ["PENDING", "EXECUTING", "COMPLETED", "FAILED", "CANCELLED"] as const;
export const Backfill = z.object({
  id,
  pipeline_id: id,
  table: z.string(),
  kind: z.enum(["snapshot", "backfill", "completion"]),
  destination_ids: z.array(id),
  filters: z.array(BackfillFilter),
  batch_size: z.number().int(),
  status: z.enum(backfillStatuses),
  rows_copied: z.number().int(),
  rows_total: z.number().int().nullable(),
  rate: z.number(),
  last_key: z.array(z.string()).nullable(),
  error: z.string(),
  attempts: z.number().int(),
  created_at: dateTime,
  started_at: nullableDateTime,
  finished_at: nullableDateTime,
  updated_at: dateTime,
});
export type Backfill = z.infer<typeof Backfill>;
export const RefreshResult = z.object({ created: z.array(Backfill) });

export const PipelineDLQ = z.object({ enabled: z.boolean(), items: z.array(DLQTable) });

export const DLQPosition = z.object({ stream: z.string(), seq: z.number().int(), subject: z.string() });
export const DLQEntry = z.object({
  id: z.string(),
  table: z.string(),
  pipeline_id: id,
  op: z.string(),
  key: z.record(z.string(), z.unknown()).nullable(),
  change: z.union([z.record(z.string(), z.unknown()), z.string()]),
  truncated: z.boolean(),
  error_class: z.string(),
  error: z.string(),
  attempts: z.number().int(),
  first_failed_at: dateTime,
  last_failed_at: dateTime,
  position: DLQPosition,
});
export type DLQEntry = z.infer<typeof DLQEntry>;
export const DLQEntryPage = z.object({
  items: z.array(DLQEntry),
  total: z.number().int(),
  limit: z.number().int(),
  next: z.string().nullable(),
});

export const RecoverRequest = z.object({
  table: z.string().optional(),
  max_count: z.number().int().min(1).max(10000000).optional(),
});
export const Recovery = z.object({
  id,
  pipeline_id: id,
  destination_id: id,
  table: z.string().nullable(),
  max_count: z.number().int().nullable(),
  status: z.enum(["PENDING", "RUNNING", "COMPLETED", "FAILED"]),
  replayed: z.number().int(),
  failed: z.number().int(),
  last_error: z.string(),
  runs: z.number().int(),
  created_at: dateTime,
  started_at: nullableDateTime,
  finished_at: nullableDateTime,
  updated_at: dateTime,
});
export type Recovery = z.infer<typeof Recovery>;
export const DiscardRequest = z.object({ table: z.string().optional() });
export const DiscardResult = z.object({ discarded: z.number().int(), table: z.string().nullable() });

export const QueryRequest = z.object({
  sql: z.string().trim().min(1, "write a query"),
  limit: z.number().int().min(1).max(100000).optional(),
  timeout_ms: z.number().int().min(1).max(60000).optional(),
});
export type QueryRequest = z.infer<typeof QueryRequest>;
export const QueryResult = z.object({
  columns: z.array(z.string()),
  types: z.array(z.string()),
  rows: z.array(z.array(z.string().nullable())),
  truncated: z.boolean(),
  elapsed_ms: z.number().int(),
});
export type QueryResult = z.infer<typeof QueryResult>;

// GET /pipelines/{id}/tail: server-sent events. Names and values arrive
// escaped by the server (control and format characters as \uXXXX).
// A message holds the changes of one table from one transaction: several
// events may share a seq, told apart by index.
export const TailChange = z.object({
  seq: z.number().int(),
  index: z.number().int(),
  message_changes: z.number().int(),
  op: z.string(),
  schema: z.string(),
  table: z.string(),
  commit_time: z.string(),
  commit_lsn: z.string(),
  key: z.string(),
  changed: z.array(z.string()),
  values: z.array(z.object({ column: z.string(), value: z.string() })),
  line: z.string(),
  error: z.string().optional(),
});
export type TailChange = z.infer<typeof TailChange>;
export const TailSkipped = z.object({ skipped: z.number().int() });

// GET /audit (admin): who changed what, when, and the entity before and
// after (the API leaves secrets out).
export const AuditEntry = z.object({
  id: z.number().int(),
  at: z.string(),
  token: z.string(),
  action: z.string(),
  entity: z.string(),
  entity_id: z.string(),
  before: z.record(z.string(), z.unknown()).nullable(),
  after: z.record(z.string(), z.unknown()).nullable(),
});
export type AuditEntry = z.infer<typeof AuditEntry>;
