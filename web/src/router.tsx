// Routes (code-based TanStack Router). Every route but /sign-in needs a
// session; the layout shows only the pages the signed-in role may use.
import type { QueryClient } from "@tanstack/react-query";
import { createRootRouteWithContext, createRoute, createRouter, redirect } from "@tanstack/react-router";
import { z } from "zod";
import type { Session } from "./auth/session";
import { Layout } from "./pages/Layout";
import { SignInPage } from "./pages/SignIn";
import { OverviewPage } from "./pages/Overview";

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
  beforeLoad: ({ context, location }) => {
    if (!context.session.token) {
      throw redirect({ to: "/sign-in", search: { next: location.href } });
    }
  },
  component: Layout,
});

const pageSearch = z.object({ offset: z.number().int().min(0).optional() });

export const overviewRoute = createRoute({ getParentRoute: () => appRoute, path: "/", component: OverviewPage, validateSearch: pageSearch });

const routeTree = rootRoute.addChildren([
  signInRoute,
  appRoute.addChildren([overviewRoute]),
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
