import { useQuery } from "@tanstack/react-query";
import { useNavigate, useSearch } from "@tanstack/react-router";
import { useMemo } from "react";
import { errorMessage } from "../api/client";
import { q } from "../api/queries";
import { Field, Notice, PageHeader, StatusBadge } from "../ui/controls";
import { LineChart } from "../ui/chart";
import { fmtBytes, fmtTime } from "../ui/format";

const ranges = [
  { hours: 1, label: "last hour" },
  { hours: 6, label: "last 6 hours" },
  { hours: 24, label: "last day" },
  { hours: 168, label: "last 7 days" },
];

// WALPage charts each source's slot over time from GET /metrics/wal: the
// WAL the source keeps for the slot, and how much may still be written
// before the slot is in danger.
export function WALPage() {
  const search = useSearch({ from: "/app/wal" });
  const navigate = useNavigate();
  const sources = useQuery(q.sources(0, 500));
  const sourceId = search.source ?? sources.data?.items[0]?.id;
  const hours = search.hours ?? 6;
  // Rounded to the minute so the query key is stable between renders.
  const from = useMemo(() => new Date(Math.floor(Date.now() / 60000) * 60000 - hours * 3600_000).toISOString(), [hours]);
  const wal = useQuery({ ...q.wal(sourceId, from), enabled: sourceId !== undefined });
  const samples = wal.data?.samples ?? [];
  const latest = samples[samples.length - 1];
  const failures = samples.filter((s) => s.error).slice(-5);
  return (
    <>
      <PageHeader title="WAL and replication slots">
        <Field label="Source">
          {({ id }) => (
            <select id={id} value={sourceId ?? ""} onChange={(e) => navigate({ to: "/wal", search: { ...search, source: Number(e.target.value) } })}>
              {(sources.data?.items ?? []).map((s) => (
                <option key={s.id} value={s.id}>
                  {s.name}
                </option>
              ))}
            </select>
          )}
        </Field>
        <Field label="Range">
          {({ id }) => (
            <select id={id} value={hours} onChange={(e) => navigate({ to: "/wal", search: { ...search, hours: Number(e.target.value) } })}>
              {ranges.map((r) => (
                <option key={r.hours} value={r.hours}>
                  {r.label}
                </option>
              ))}
            </select>
          )}
        </Field>
      </PageHeader>
      {wal.error && <Notice kind="error">{errorMessage(wal.error)}</Notice>}
      {sources.data?.items.length === 0 && <Notice kind="info">No sources yet.</Notice>}
      {latest && (
        <div className="card">
          <dl className="kv">
            <dt>Last check</dt>
            <dd>{fmtTime(latest.at)}</dd>
            <dt>Slot WAL status</dt>
            <dd>{latest.wal_status ? <StatusBadge value={latest.wal_status === "lost" || latest.wal_status === "unreserved" ? "ERROR" : "HEALTHY"} /> : "–"} {latest.wal_status ?? ""}</dd>
            <dt>Current WAL LSN</dt>
            <dd>
              <code>{latest.wal_lsn ?? "–"}</code>
            </dd>
            <dt>Retained for the slot</dt>
            <dd>{fmtBytes(latest.retained_bytes)}</dd>
            <dt>Safe WAL size</dt>
            <dd>{latest.safe_wal_size === null ? "unlimited (max_slot_wal_keep_size not set)" : fmtBytes(latest.safe_wal_size)}</dd>
          </dl>
        </div>
      )}
      {sourceId !== undefined && !wal.isLoading && samples.length === 0 && !wal.error && (
        <Notice kind="info">No samples yet: capture checks each source's slot every ROSETTA_WAL_MONITOR_INTERVAL (60 s by default).</Notice>
      )}
      {samples.length > 0 && (
        <>
          <LineChart title="WAL retained for the slot" points={samples.map((s) => ({ t: Date.parse(s.at), v: s.retained_bytes }))} format={fmtBytes} />
          <LineChart title="Safe WAL size left" color="#116329" points={samples.map((s) => ({ t: Date.parse(s.at), v: s.safe_wal_size }))} format={fmtBytes} />
        </>
      )}
      {failures.length > 0 && (
        <>
          <h2>Failed checks</h2>
          <ul>
            {failures.map((f) => (
              <li key={f.at}>
                {fmtTime(f.at)}: <span className="reason-error">{f.error}</span>
              </li>
            ))}
          </ul>
        </>
      )}
    </>
  );
}
