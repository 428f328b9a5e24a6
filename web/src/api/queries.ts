// Query keys and fetchers shared by the pages. Lists take the API's own
// paging (limit, offset); every mutation invalidates what it changed, so
// nothing needs a reload after an action.
import { keepPreviousData, queryOptions } from "@tanstack/react-query";
import { api } from "./client";
import {
  AuditEntry,
  Backfill,
  Destination,
  DestinationTypes,
  DLQEntryPage,
  Pipeline,
  PipelineDestinationStatus,
  PipelineDetail,
  PipelineDLQ,
  Source,
  SourceTables,
  WALSamples,
  page,
} from "./schemas";

export const pageSize = 50;

// liveInterval is how often live views (overview, pipeline, jobs) refresh.
export const liveInterval = 2000;

export const q = {
  status: (offset: number) =>
    queryOptions({
      queryKey: ["status", offset],
      queryFn: ({ signal }) => api("/status", { schema: page(PipelineDestinationStatus), query: { limit: pageSize, offset }, signal }),
      refetchInterval: liveInterval,
      placeholderData: keepPreviousData,
    }),
  sources: (offset: number, limit = pageSize) =>
    queryOptions({
      queryKey: ["sources", offset, limit],
      queryFn: ({ signal }) => api("/sources", { schema: page(Source), query: { limit, offset }, signal }),
      placeholderData: keepPreviousData,
    }),
  destinations: (offset: number, limit = pageSize) =>
    queryOptions({
      queryKey: ["destinations", offset, limit],
      queryFn: ({ signal }) => api("/destinations", { schema: page(Destination), query: { limit, offset }, signal }),
      placeholderData: keepPreviousData,
    }),
  destinationTypes: () =>
    queryOptions({
      queryKey: ["destination-types"],
      queryFn: ({ signal }) => api("/destination-types", { schema: DestinationTypes, signal }),
      staleTime: Infinity,
    }),
  pipelines: (offset: number, limit = pageSize) =>
    queryOptions({
      queryKey: ["pipelines", offset, limit],
      queryFn: ({ signal }) => api("/pipelines", { schema: page(Pipeline), query: { limit, offset }, signal }),
      placeholderData: keepPreviousData,
    }),
  pipeline: (id: number) =>
    queryOptions({
      queryKey: ["pipeline", id],
      queryFn: ({ signal }) => api(`/pipelines/${id}`, { schema: PipelineDetail, signal }),
      refetchInterval: liveInterval,
    }),
  sourceTables: (id: number) =>
    queryOptions({
      queryKey: ["source-tables", id],
      queryFn: ({ signal }) => api(`/sources/${id}/tables`, { schema: SourceTables, signal }),
      staleTime: 10_000,
    }),
  backfills: (pipelineId: number, offset: number) =>
    queryOptions({
      queryKey: ["backfills", pipelineId, offset],
      queryFn: ({ signal }) =>
        api(`/pipelines/${pipelineId}/backfill`, { schema: page(Backfill), query: { limit: pageSize, offset }, signal }),
      refetchInterval: liveInterval,
      placeholderData: keepPreviousData,
    }),
  pipelineDLQ: (pipelineId: number) =>
    queryOptions({
      queryKey: ["dlq", pipelineId],
      queryFn: ({ signal }) => api(`/pipelines/${pipelineId}/dlq`, { schema: PipelineDLQ, signal }),
      refetchInterval: liveInterval,
    }),
  dlqEntries: (pipelineId: number, destinationId: number, after: string | null) =>
    queryOptions({
      queryKey: ["dlq", pipelineId, destinationId, after],
      queryFn: ({ signal }) =>
        api(`/pipelines/${pipelineId}/destinations/${destinationId}/dlq`, {
          schema: DLQEntryPage,
          query: { limit: pageSize, after },
          signal,
        }),
      refetchInterval: liveInterval,
      placeholderData: keepPreviousData,
    }),
  audit: (offset: number) =>
    queryOptions({
      queryKey: ["audit", offset],
      queryFn: ({ signal }) => api("/audit", { schema: page(AuditEntry), query: { limit: pageSize, offset }, signal }),
      placeholderData: keepPreviousData,
    }),
  wal: (sourceId: number | undefined, from: string) =>
    queryOptions({
      queryKey: ["wal", sourceId, from],
      queryFn: ({ signal }) => api("/metrics/wal", { schema: WALSamples, query: { source_id: sourceId, from, limit: 10000 }, signal }),
      refetchInterval: 30_000,
    }),
};
