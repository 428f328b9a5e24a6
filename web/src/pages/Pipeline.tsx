import { useMutation, useQuery, useQueryClient } from "@tanstack/react-query";
import { Link, useNavigate, useParams } from "@tanstack/react-router";
import { createColumnHelper } from "@tanstack/react-table";
import { useState } from "react";
import { api, errorMessage } from "../api/client";
import { q } from "../api/queries";
import { Pipeline, RefreshResult, type DestinationStatus } from "../api/schemas";
import { can } from "../auth/roles";
import { useSession } from "../auth/session";
import { Button, Notice, PageHeader, StatusBadge } from "../ui/controls";
import { Confirm } from "../ui/dialogs";
import { fmtBytes, fmtInt, fmtRate, fmtSeconds, fmtTime } from "../ui/format";
import { DataTable } from "../ui/table";
import { Backfills } from "./Backfills";
import { DeadLetters } from "./DeadLetters";
import { PipelineDialog } from "./Pipelines";

const col = createColumnHelper<DestinationStatus>();
const columns = [
  col.accessor("name", { header: "Destination", cell: (c) => `${c.getValue()} (${c.row.original.type})` }),
  col.accessor("health", {
    header: "Health",
    cell: (c) => (
      <div className="health-cell">
        <StatusBadge value={c.getValue()} />
        {c.row.original.reason && <span className={`reason reason-${c.getValue().toLowerCase()}`}>{c.row.original.reason}</span>}
      </div>
    ),
  }),
  col.accessor("lag_seconds", { header: "Lag", cell: (c) => fmtSeconds(c.getValue()) }),
  col.accessor("lag_bytes", { header: "Lag (bytes)", cell: (c) => fmtBytes(c.getValue()) }),
  col.accessor("pending", { header: "Pending", cell: (c) => fmtInt(c.getValue()) }),
  col.accessor("throughput", { header: "Throughput", cell: (c) => fmtRate(c.getValue()) }),
  col.accessor((d) => d.dlq.depth, { id: "dlq", header: "DLQ", cell: (c) => fmtInt(c.getValue()) }),
  col.accessor("applied_commit_lsn", { header: "Applied LSN", cell: (c) => <code>{c.getValue() || "–"}</code> }),
  col.accessor("last_applied_at", { header: "Last applied", cell: (c) => fmtTime(c.getValue()) }),
];

export function PipelinePage() {
  const { id } = useParams({ from: "/app/pipelines/$id" });
  const pid = Number(id);
  const { who } = useSession();
  const qc = useQueryClient();
  const navigate = useNavigate();
  const detail = useQuery(q.pipeline(pid));
  const [editOpen, setEditOpen] = useState(false);
  const [note, setNote] = useState<string | null>(null);
  const invalidate = async () => {
    await qc.invalidateQueries({ queryKey: ["pipeline", pid] });
    await qc.invalidateQueries({ queryKey: ["pipelines"] });
    await qc.invalidateQueries({ queryKey: ["status"] });
  };
  const action = useMutation({
    mutationFn: (verb: "start" | "pause") => api(`/pipelines/${pid}/${verb}`, { method: "POST", schema: Pipeline }),
    onSuccess: async (p) => {
      setNote(p.status === "START" ? "Pipeline started." : "Pipeline paused.");
      await invalidate();
    },
    onError: (err) => setNote(errorMessage(err)),
  });
  const refresh = useMutation({
    mutationFn: () => api(`/pipelines/${pid}/refresh`, { method: "POST", schema: RefreshResult }),
    onSuccess: async (r) => {
      setNote(r.created.length ? `Snapshot jobs created for ${r.created.map((b) => b.table).join(", ")}.` : "Every table already has a snapshot: nothing to do.");
      await qc.invalidateQueries({ queryKey: ["backfills", pid] });
    },
    onError: (err) => setNote(errorMessage(err)),
  });
  const p = detail.data;
  const operate = can(who?.role, "operate");
  const configure = can(who?.role, "configure");
  const tail = can(who?.role, "tail");
  if (detail.error) return <Notice kind="error">{errorMessage(detail.error)}</Notice>;
  if (!p) return <p>Loading…</p>;
  const deadLetters = p.destinations.reduce((n, d) => n + d.dlq.depth, 0);
  return (
    <>
      <PageHeader title={`Pipeline ${p.name}`}>
        <StatusBadge value={p.status} />
        {tail && (
          <Link className="btn btn-secondary" to="/pipelines/$id/tail" params={{ id }}>
            Live tail
          </Link>
        )}
        {operate && (
          <>
            {p.status === "PAUSE" ? (
              <Button variant="primary" disabled={action.isPending} onClick={() => action.mutate("start")}>
                Start
              </Button>
            ) : (
              <Button disabled={action.isPending} onClick={() => action.mutate("pause")}>
                Pause
              </Button>
            )}
            <Button disabled={refresh.isPending} onClick={() => refresh.mutate()}>
              Refresh snapshots
            </Button>
          </>
        )}
        {configure && (
          <>
            <Button onClick={() => setEditOpen(true)}>Edit</Button>
            <Confirm
              trigger={<Button variant="danger">Delete</Button>}
              title={`Delete pipeline ${p.name}?`}
              body={
                deadLetters > 0
                  ? `Replication of its tables stops. Rows already written stay at the destinations. Its dead-letter queues (${fmtInt(deadLetters)} rejected changes) are deleted for good.`
                  : "Replication of its tables stops. Rows already written stay at the destinations."
              }
              confirmLabel="Delete pipeline"
              danger
              onConfirm={async () => {
                // The API refuses (409) to drop dead letters unless told to;
                // the dialog above said they go.
                await api(`/pipelines/${pid}`, { method: "DELETE", query: deadLetters > 0 ? { discard_dead_letters: "true" } : undefined });
                await invalidate();
                await navigate({ to: "/pipelines" });
              }}
            />
          </>
        )}
      </PageHeader>
      {note && <Notice kind="info">{note}</Notice>}
      <div className="card">
        <dl className="kv">
          <dt>Tables</dt>
          <dd>{p.tables.join(", ")}</dd>
          <dt>Capture</dt>
          <dd>
            <StatusBadge value={p.source_state.state} /> {p.source_state.last_error && <span className="reason-error">{p.source_state.last_error}</span>}
          </dd>
          <dt>Confirmed LSN</dt>
          <dd>
            <code>{p.source_state.confirmed_lsn || "–"}</code>
          </dd>
        </dl>
      </div>
      <h2>Destinations</h2>
      <DataTable data={p.destinations} columns={columns} caption="Destinations of the pipeline" empty="No destinations." rowKey={(d) => String(d.destination_id)} />
      <Backfills pipeline={p} />
      {operate && <DeadLetters pipeline={p} />}
      {editOpen && <PipelineDialog pipeline={p} open={editOpen} onOpenChange={setEditOpen} />}
    </>
  );
}
