import { Link, Outlet, useNavigate } from "@tanstack/react-router";
import { useQueryClient } from "@tanstack/react-query";
import { useEffect } from "react";
import { useSession } from "../auth/session";
import { can } from "../auth/roles";
import { Button } from "../ui/controls";

// Layout is the signed-in frame: navigation (only the pages the role may
// use), who is signed in, and sign-out.
export function Layout() {
  const session = useSession();
  const navigate = useNavigate();
  const qc = useQueryClient();
  const role = session.who?.role;

  useEffect(() => {
    if (!session.token) {
      qc.clear();
      void navigate({ to: "/sign-in" });
    }
  }, [session.token, navigate, qc]);

  if (!session.token) return null;
  const links: { to: string; label: string; show: boolean }[] = [
    { to: "/", label: "Overview", show: true },
    { to: "/pipelines", label: "Pipelines", show: true },
    { to: "/sources", label: "Sources", show: true },
    { to: "/destinations", label: "Destinations", show: true },
    { to: "/wal", label: "WAL & slots", show: true },
    { to: "/query", label: "Query DuckDB", show: can(role, "query") },
    { to: "/audit", label: "Audit log", show: can(role, "audit") },
  ];
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <span className="brand">Rosetta</span>
        <span className="who">
          Signed in as <strong>{session.who?.name}</strong> ({role})
        </span>
        <Button onClick={() => session.signOut("You signed out.")}>Sign out</Button>
      </header>
      <nav className="sidebar" aria-label="Main">
        <ul>
          {links
            .filter((l) => l.show)
            .map((l) => (
              <li key={l.to}>
                <Link to={l.to} activeOptions={{ exact: l.to === "/" }} activeProps={{ "aria-current": "page", className: "active" }}>
                  {l.label}
                </Link>
              </li>
            ))}
        </ul>
      </nav>
      <main id="main" className="content">
        <Outlet />
      </main>
    </div>
  );
}
