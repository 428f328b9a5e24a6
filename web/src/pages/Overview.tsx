import { useQuery } from "@tanstack/react-query";
import { Link, useNavigate, useSearch } from "@tanstack/react-router";
import { createColumnHelper } from "@tanstack/react-table";
import { errorMessage } from "../api/client";
import { liveInterval, pageSize, q } from "../api/queries";
import type { PipelineDestinationStatus } from "../api/schemas";
import { Notice, PageHeader, StatusBadge } from "../ui/controls";
import { fmtBytes, fmtInt, fmtRate, fmtSeconds, fmtTime } from "../ui/format";
import { DataTable, Pager } from "../ui/table";

const col = createColumnHelper<PipelineDestinationStatus>();

const columns = [
  col.accessor("pipeline_name", {
    header: "Pipeline",
    cell: (c) => (
      <Link to="/pipelines/$id" params={{ id: String(c.row.original.pipeline_id) }}>
        {c.getValue()}
      </Link>
    ),
  }),
  col.accessor("name", {
    header: "Destination",
    cell: (c) => (
      <>
        {c.getValue()} <span className="muted">({c.row.original.type})</span>
      </>
    ),
  }),
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
  col.accessor((r) => r.dlq, {
    id: "dlq",
    header: "DLQ",
    cell: (c) => {
      const d = c.getValue();
      if (!d.enabled) return <span className="muted">off</span>;
      if (d.error) return <span className="reason-error">{d.error}</span>;
      return d.depth > 0 ? <strong className="reason-error">{fmtInt(d.depth)}</strong> : "0";
    },
  }),
  col.accessor("last_applied_at", { header: "Last applied", cell: (c) => fmtTime(c.getValue()) }),
];

// OverviewPage shows every pipeline destination's health, refreshing live.
export function OverviewPage() {
  const { offset = 0 } = useSearch({ from: "/app/" });
  const navigate = useNavigate();
  const status = useQuery(q.status(offset));
  const items = status.data?.items ?? [];
  const count = (h: string) => items.filter((i) => i.health === h).length;
  return (
    <>
      <PageHeader title="Overview">
        <span className="muted" aria-live="off">
          refreshes every {liveInterval / 1000} s{status.isFetching ? " …" : ""}
        </span>
      </PageHeader>
      {status.error && <Notice kind="error">Could not load the status: {errorMessage(status.error)}</Notice>}
      {status.data && (
        <ul className="tiles" aria-label="Destinations by health">
          <li>
            <span className="tile-n">{status.data.total}</span> destinations
          </li>
          <li>
            <span className="tile-n ok">{count("HEALTHY")}</span> healthy
          </li>
          <li>
            <span className="tile-n warn">{count("LAGGING")}</span> lagging
          </li>
          <li>
            <span className="tile-n bad">{count("ERROR")}</span> in error
          </li>
          <li>
            <span className="tile-n">{count("PAUSED")}</span> paused
          </li>
        </ul>
      )}
      <DataTable
        data={items}
        columns={columns}
        caption="Pipeline destinations"
        empty={status.isLoading ? "Loading…" : "No pipelines yet: create a source, a destination and a pipeline."}
        rowKey={(r) => `${r.pipeline_id}-${r.destination_id}`}
      />
      <Pager
        label="Destinations"
        offset={offset}
        limit={pageSize}
        total={status.data?.total ?? 0}
        onChange={(o) => navigate({ to: "/", search: { offset: o } })}
      />
    </>
  );
}
