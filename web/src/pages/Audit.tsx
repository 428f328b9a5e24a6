import { useQuery } from "@tanstack/react-query";
import { useNavigate, useSearch } from "@tanstack/react-router";
import { createColumnHelper } from "@tanstack/react-table";
import { errorMessage } from "../api/client";
import { pageSize, q } from "../api/queries";
import type { AuditEntry } from "../api/schemas";
import { Notice, PageHeader } from "../ui/controls";
import { fmtTime } from "../ui/format";
import { DataTable, Pager } from "../ui/table";
import { auditDiff } from "./auditDiff";

const col = createColumnHelper<AuditEntry>();
const columns = [
  col.accessor("at", { header: "When", cell: (c) => fmtTime(c.getValue()) }),
  col.accessor("token", { header: "Who (token)" }),
  col.accessor("action", { header: "Action" }),
  col.accessor((e) => `${e.entity} ${e.entity_id}`, { id: "what", header: "What" }),
  col.display({
    id: "diff",
    header: "Before → after",
    cell: (c) => {
      const changes = auditDiff(c.row.original.before, c.row.original.after);
      if (!changes.length) return <span className="muted">no field changed</span>;
      return (
        <ul className="diff">
          {changes.map((d) => (
            <li key={d.field}>
              <code>{d.field}</code>: <del>{d.before}</del> → <ins>{d.after}</ins>
            </li>
          ))}
        </ul>
      );
    },
  }),
];

// AuditPage pages the audit log (admins; the API refuses others and the
// navigation hides the page from them), newest first: who changed what,
// when, and each changed field before and after, without secrets.
export function AuditPage() {
  const { offset = 0 } = useSearch({ from: "/app/audit" });
  const navigate = useNavigate();
  const list = useQuery(q.audit(offset));
  return (
    <>
      <PageHeader title="Audit log" />
      <p className="hint">Every change made through the API, newest first. Secrets are never recorded.</p>
      {list.error && <Notice kind="error">{errorMessage(list.error)}</Notice>}
      <DataTable data={list.data?.items ?? []} columns={columns} caption="Audit log entries" empty={list.isPending ? "Loading…" : "No changes recorded yet."} rowKey={(e) => String(e.id)} />
      {list.data && (
        <Pager offset={offset} limit={pageSize} total={list.data.total} label="Audit log" onChange={(o) => void navigate({ to: "/audit", search: { offset: o } })} />
      )}
    </>
  );
}
