import { useQuery } from "@tanstack/react-query";
import { Link, useParams } from "@tanstack/react-router";
import { useEffect, useRef, useState } from "react";
import { errorMessage } from "../api/client";
import { q } from "../api/queries";
import { TailChange, TailSkipped } from "../api/schemas";
import { streamEvents } from "../api/sse";
import { Button, Field, Notice, PageHeader } from "../ui/controls";
import { fmtInt } from "../ui/format";

// A row of the tail: a change, or a note that the server dropped changes
// because the browser read too slowly.
export type TailRow = { kind: "change"; key: string; change: TailChange } | { kind: "skipped"; key: string; skipped: number };

// keepRows is how many rows the page shows; older ones scroll away.
export const keepRows = 500;

// addRows puts new rows (oldest first) on top of rows (newest first),
// keeping at most keepRows.
export function addRows(rows: TailRow[], fresh: TailRow[]): TailRow[] {
  return [...fresh.slice().reverse(), ...rows].slice(0, keepRows);
}

type State = "connecting" | "live" | "ended" | "error";

// LiveTailPage shows a pipeline's changes as capture publishes them
// (GET /pipelines/{id}/tail, operators), newest first, with pause and
// clear. Names and values arrive escaped by the server.
export function LiveTailPage() {
  const { id } = useParams({ from: "/app/pipelines/$id/tail" });
  const pid = Number(id);
  const detail = useQuery(q.pipeline(pid));
  const [table, setTable] = useState("");
  const [rows, setRows] = useState<TailRow[]>([]);
  const [paused, setPaused] = useState(false);
  const [held, setHeld] = useState<TailRow[]>([]);
  const [state, setState] = useState<State>("connecting");
  const [error, setError] = useState<string | null>(null);
  const [attempt, setAttempt] = useState(0);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;

  useEffect(() => {
    const ctl = new AbortController();
    setState("connecting");
    setError(null);
    let n = 0;
    const take = (r: TailRow) => {
      if (pausedRef.current) setHeld((h) => [...h, r].slice(-keepRows));
      else setRows((rs) => addRows(rs, [r]));
    };
    streamEvents(
      `/pipelines/${pid}/tail`,
      { table: table || undefined },
      (e) => {
        try {
          if (e.event === "change") {
            const change = TailChange.parse(JSON.parse(e.data));
            take({ kind: "change", key: `c${change.seq}-${n++}`, change });
          } else if (e.event === "skipped") {
            take({ kind: "skipped", key: `s${n++}`, skipped: TailSkipped.parse(JSON.parse(e.data)).skipped });
          }
        } catch (err) {
          setError(`unexpected event from the API: ${errorMessage(err)}`);
        }
      },
      ctl.signal,
      () => setState("live"),
    )
      .then(() => {
        if (!ctl.signal.aborted) setState("ended");
      })
      .catch((err) => {
        if (ctl.signal.aborted) return;
        setState("error");
        setError(errorMessage(err));
      });
    // Leaving the page (or changing the table) closes the stream; the
    // server then stops its reader.
    return () => ctl.abort();
  }, [pid, table, attempt]);

  const resume = () => {
    setRows((rs) => addRows(rs, held));
    setHeld([]);
    setPaused(false);
  };
  const p = detail.data;
  const status =
    state === "live" || state === "connecting"
      ? paused
        ? `Paused: ${fmtInt(held.length)} new changes held back.`
        : state === "live"
          ? "Following new changes as they are captured."
          : "Connecting…"
      : state === "ended"
        ? "The stream ended (the server stopped)."
        : "Not connected.";
  return (
    <>
      <PageHeader title={`Live tail${p ? `: ${p.name}` : ""}`}>
        {paused ? (
          <Button variant="primary" onClick={resume}>
            Resume
          </Button>
        ) : (
          <Button onClick={() => setPaused(true)}>Pause</Button>
        )}
        <Button
          onClick={() => {
            setRows([]);
            setHeld([]);
          }}
        >
          Clear
        </Button>
        {(state === "ended" || state === "error") && <Button onClick={() => setAttempt((a) => a + 1)}>Reconnect</Button>}
      </PageHeader>
      <p>
        <Link to="/pipelines/$id" params={{ id }}>
          Back to the pipeline
        </Link>
      </p>
      <div className="card tail-controls">
        <Field label="Table">
          {({ id: fieldId }) => (
            <select id={fieldId} value={table} onChange={(e) => setTable(e.target.value)}>
              <option value="">All tables of the pipeline</option>
              {(p?.tables ?? []).map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
            </select>
          )}
        </Field>
        <p role="status" className="hint">
          {status} {fmtInt(rows.length)} shown.
        </p>
      </div>
      {error && <Notice kind="error">{error}</Notice>}
      <div className="table-wrap">
        <table className="tail-table">
          <caption className="sr-only">Changes, newest first</caption>
          <thead>
            <tr>
              <th scope="col">#</th>
              <th scope="col">Committed</th>
              <th scope="col">Op</th>
              <th scope="col">Table</th>
              <th scope="col">Key</th>
              <th scope="col">Values</th>
            </tr>
          </thead>
          <tbody>
            {rows.length === 0 && (
              <tr>
                <td colSpan={6} className="muted">
                  No changes yet: they appear here as rows change at the source.
                </td>
              </tr>
            )}
            {rows.map((r) =>
              r.kind === "skipped" ? (
                <tr key={r.key} className="tail-skipped">
                  <td colSpan={6}>{fmtInt(r.skipped)} changes skipped: the browser read too slowly for the server to keep them.</td>
                </tr>
              ) : (
                <tr key={r.key}>
                  <td>{r.change.message_changes > 1 ? `${r.change.seq}.${r.change.index}` : r.change.seq}</td>
                  <td>{r.change.error ? "–" : r.change.commit_time}</td>
                  <td>{r.change.op}</td>
                  <td>{r.change.error ? "–" : `${r.change.schema}.${r.change.table}`}</td>
                  <td>
                    <code>{r.change.key}</code>
                  </td>
                  <td>
                    {r.change.error ? (
                      <span className="reason-error">{r.change.error}</span>
                    ) : (
                      <code>{r.change.values.map((v) => `${v.column}=${v.value}`).join("  ")}</code>
                    )}
                  </td>
                </tr>
              ),
            )}
          </tbody>
        </table>
      </div>
    </>
  );
}
