// Routes (code-based TanStack Router). Every route but /sign-in needs a
// session; the layout shows only the pages the signed-in role may use.
import type { QueryClient } from "@tanstack/react-query";
import { createRootRouteWithContext, createRoute, createRouter, redirect } from "@tanstack/react-router";
import { z } from "zod";
import { signedIn, type Session } from "./auth/session";
import { Layout } from "./pages/Layout";
import { SignInPage } from "./pages/SignIn";
import { OverviewPage } from "./pages/Overview";
import { SourcesPage } from "./pages/Sources";
import { DestinationsPage } from "./pages/Destinations";
import { PipelinesPage } from "./pages/Pipelines";
import { PipelinePage } from "./pages/Pipeline";
import { WALPage } from "./pages/WAL";
import { QueryPage } from "./pages/Query";
import { LiveTailPage } from "./pages/LiveTail";
import { AuditPage } from "./pages/Audit";

type Ctx = { session: Session; queryClient: QueryClient };

const rootRoute = createRootRouteWithContext<Ctx>()();

const signInRoute = createRoute({
  getParentRoute: () => rootRoute,
  path: "/sign-in",
  component: SignInPage,
  validateSearch: z.object({ next: z.string().optional() }),
});

const appRoute = createRoute({
  getParentRoute: () => rootRoute,
  id: "app",
  beforeLoad: ({ location }) => {
    if (!signedIn()) {
      throw redirect({ to: "/sign-in", search: { next: location.href } });
    }
  },
  component: Layout,
});

const pageSearch = z.object({ offset: z.number().int().min(0).optional() });

export const overviewRoute = createRoute({ getParentRoute: () => appRoute, path: "/", component: OverviewPage, validateSearch: pageSearch });

export const sourcesRoute = createRoute({ getParentRoute: () => appRoute, path: "/sources", component: SourcesPage, validateSearch: pageSearch });
export const destinationsRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "/destinations",
  component: DestinationsPage,
  validateSearch: pageSearch,
});
export const pipelinesRoute = createRoute({ getParentRoute: () => appRoute, path: "/pipelines", component: PipelinesPage, validateSearch: pageSearch });
export const pipelineRoute = createRoute({ getParentRoute: () => appRoute, path: "/pipelines/$id", component: PipelinePage });
export const tailRoute = createRoute({ getParentRoute: () => appRoute, path: "/pipelines/$id/tail", component: LiveTailPage });
export const auditRoute = createRoute({ getParentRoute: () => appRoute, path: "/audit", component: AuditPage, validateSearch: pageSearch });
export const walRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "/wal",
  component: WALPage,
  validateSearch: z.object({ source: z.number().int().optional(), hours: z.number().optional() }),
});

export const queryRoute = createRoute({
  getParentRoute: () => appRoute,
  path: "/query",
  component: QueryPage,
  validateSearch: z.object({ destination: z.number().int().optional() }),
});

export const routeTree = rootRoute.addChildren([
  signInRoute,
  appRoute.addChildren([overviewRoute, sourcesRoute, destinationsRoute, pipelinesRoute, pipelineRoute, tailRoute, walRoute, queryRoute, auditRoute]),
]);

export const router = createRouter({
  routeTree,
  context: { session: undefined!, queryClient: undefined! },
  defaultPreload: false,
});

declare module "@tanstack/react-router" {
  interface Register {
    router: typeof router;
  }
}
