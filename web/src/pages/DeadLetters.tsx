import { useQuery, useQueryClient } from "@tanstack/react-query";
import { createColumnHelper } from "@tanstack/react-table";
import { useState } from "react";
import { api, errorMessage } from "../api/client";
import { liveInterval, q } from "../api/queries";
import { DiscardResult, Recovery, type DestinationStatus, type DLQEntry, type PipelineDetail } from "../api/schemas";
import { Button, Notice, StatusBadge } from "../ui/controls";
import { Confirm } from "../ui/dialogs";
import { fmtInt, fmtTime } from "../ui/format";
import { DataTable } from "../ui/table";

const col = createColumnHelper<DLQEntry>();
const columns = [
  col.accessor("table", { header: "Table" }),
  col.accessor("op", { header: "Op" }),
  col.accessor("key", { header: "Key", cell: (c) => <code>{JSON.stringify(c.getValue())}</code> }),
  col.accessor("error_class", { header: "Error class", cell: (c) => <code>{c.getValue()}</code> }),
  col.accessor("error", { header: "Reason", cell: (c) => <span className="reason-error">{c.getValue()}</span> }),
  col.accessor("attempts", { header: "Attempts" }),
  col.accessor("last_failed_at", { header: "Last failed", cell: (c) => fmtTime(c.getValue()) }),
];

function DestinationDLQ({ pipeline, dest }: { pipeline: PipelineDetail; dest: DestinationStatus }) {
  const qc = useQueryClient();
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  const after = cursors[cursors.length - 1];
  const entries = useQuery(q.dlqEntries(pipeline.id, dest.destination_id, after));
  const [recoveryId, setRecoveryId] = useState<number | null>(null);
  const [note, setNote] = useState<string | null>(null);
  const base = `/pipelines/${pipeline.id}/destinations/${dest.destination_id}`;
  const recovery = useQuery({
    queryKey: ["recovery", pipeline.id, dest.destination_id, recoveryId],
    queryFn: ({ signal }) => api(`${base}/dlq/recoveries/${recoveryId}`, { schema: Recovery, signal }),
    enabled: recoveryId !== null,
    refetchInterval: (query) => (query.state.data && ["COMPLETED", "FAILED"].includes(query.state.data.status) ? false : liveInterval),
  });
  const refreshAll = async () => {
    setCursors([null]);
    await qc.invalidateQueries({ queryKey: ["dlq", pipeline.id] });
    await qc.invalidateQueries({ queryKey: ["pipeline", pipeline.id] });
    await qc.invalidateQueries({ queryKey: ["status"] });
  };
  const total = entries.data?.total ?? 0;
  const r = recovery.data;
  return (
    <section aria-labelledby={`dlq-${dest.destination_id}`} className="card">
      <div className="page-header">
        <h3 id={`dlq-${dest.destination_id}`}>
          {dest.name}: {fmtInt(total)} dead-lettered
        </h3>
        <div className="page-actions">
          <Confirm
            trigger={<Button disabled={total === 0}>Recover</Button>}
            title={`Replay ${fmtInt(total)} changes into ${dest.name}?`}
            body="Each entry is applied again through the destination; it leaves the queue only once the destination committed it. Entries that fail again stay."
            confirmLabel="Recover"
            onConfirm={async () => {
              const rec = await api(`${base}/recover-dlq`, { method: "POST", schema: Recovery });
              setRecoveryId(rec.id);
              setNote(null);
            }}
          />
          <Confirm
            trigger={
              <Button variant="danger" disabled={total === 0}>
                Discard
              </Button>
            }
            title={`Discard every dead-lettered change of ${dest.name}?`}
            body="They are deleted for good: the destination never gets them unless the source changes those rows again or a backfill re-sends them."
            confirmLabel="Discard for good"
            danger
            onConfirm={async () => {
              const res = await api(`${base}/discard-dlq`, { method: "POST", schema: DiscardResult });
              setNote(`Discarded ${fmtInt(res.discarded)} entries.`);
              await refreshAll();
            }}
          />
        </div>
      </div>
      {r && (
        <Notice kind={r.status === "FAILED" ? "error" : r.status === "COMPLETED" ? "success" : "info"}>
          Recovery {r.id}: <StatusBadge value={r.status} /> {fmtInt(r.replayed)} replayed, {fmtInt(r.failed)} failed again
          {r.last_error ? ` (${r.last_error})` : ""}
          {r.status === "PENDING" && pipeline.status === "PAUSE" ? " (waits until the pipeline is started)" : ""}
        </Notice>
      )}
      {note && <Notice kind="info">{note}</Notice>}
      {entries.error && <Notice kind="error">{errorMessage(entries.error)}</Notice>}
      <DataTable data={entries.data?.items ?? []} columns={columns} caption={`Dead-lettered changes of ${dest.name}`} empty="The queue is empty." rowKey={(e) => `${e.table}-${e.id}`} />
      {(cursors.length > 1 || entries.data?.next) && (
        <nav className="pager" aria-label={`${dest.name} dead-letter pages`}>
          <Button disabled={cursors.length <= 1} onClick={() => setCursors(cursors.slice(0, -1))}>
            Previous
          </Button>
          <Button disabled={!entries.data?.next} onClick={() => entries.data?.next && setCursors([...cursors, entries.data.next])}>
            Next
          </Button>
        </nav>
      )}
    </section>
  );
}

// DeadLetters shows each destination's dead-letter queue for the pipeline:
// entries with their error class and reason, recover and discard.
export function DeadLetters({ pipeline }: { pipeline: PipelineDetail }) {
  const enabled = pipeline.destinations.some((d) => d.dlq.enabled);
  return (
    <section aria-labelledby="dlq-h">
      <h2 id="dlq-h">Dead-letter queues</h2>
      {!enabled ? (
        <Notice kind="info">Dead-letter queues are off: set ROSETTA_REDIS_URL. A rejected change is retried with its error in the destination's health.</Notice>
      ) : (
        pipeline.destinations.map((d) => <DestinationDLQ key={d.destination_id} pipeline={pipeline} dest={d} />)
      )}
    </section>
  );
}
