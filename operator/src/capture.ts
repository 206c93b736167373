import { stringify } from "yaml";

import type { Component, SessionStoreSpec } from "./spec.js";

/** The canary cohort routed through the capture config: sessions hashing below `weight`%. */
export interface CanaryRoute {
  component: Component;
  revision: string;
  image: string;
  weight: number;
  /** host:port of the canary Service the cohort's sessions go to. */
  address: string;
}

/**
 * The capture-config document ingest reads (services/ingest capture-config.ts: enabled,
 * sampleRate, stage, cohorts, optOut, tenantCohorts). Ingest resolves tenant opt-out and
 * tenant cohorts per watcher from its API key. Ingest validates the canary route (a bad
 * one is logged and left out; the rest of the file still applies) and serves it to every watcher
 * as CaptureConfig.canary, weight as weight_percent. For an index or archive canary,
 * ingest's shipper sends the cohort's events (@sessiontrack/cohort inCanaryCohort) to
 * `address`; for an ingest canary the SDK sends the cohort to `address` on a lane of its
 * own and moves what that lane holds back to stable when the route is withdrawn.
 */
export interface CaptureDocument {
  enabled: boolean;
  sampleRate: number;
  stage: string;
  cohorts: { name: string; botIds: string[]; userGroups: string[]; sampleRate: number }[];
  optOut: { userIds: string[]; botIds: string[]; tenantIds: string[] };
  tenantCohorts: {
    name: string;
    tenants: string[];
    botIds: string[];
    userGroups: string[];
    sampleRate: number;
  }[];
  canary?: CanaryRoute;
}

/** The index of the stage in force: the named one, else the first; -1 without stages. */
export function stageIndex(spec: SessionStoreSpec, stageName: string | undefined): number {
  const stages = spec.capture.stages;
  if (stages.length === 0) return -1;
  const found = stageName === undefined ? -1 : stages.findIndex((stage) => stage.name === stageName);
  return found >= 0 ? found : 0;
}

/**
 * Builds the capture config for the stage at `current` (stages are cumulative: every
 * stage up to it captures). A stage selecting by tenant is published only as a tenant
 * cohort, never as a plain cohort, because ingest's cohort rules cannot see tenants and
 * an empty bot/group list would match everyone: under-capturing is the safe side.
 */
export function buildCaptureDocument(
  spec: SessionStoreSpec,
  current: number,
  canary: CanaryRoute | undefined,
): CaptureDocument {
  const { capture } = spec;
  const stages = capture.stages;
  const active = current < 0 ? [] : stages.slice(0, current + 1);
  let sampleRate = stages.length === 0 ? capture.sampleRate : capture.sampleRate;
  const cohorts: CaptureDocument["cohorts"] = [];
  const tenantCohorts: CaptureDocument["tenantCohorts"] = [];
  for (const stage of active) {
    const { tenants, bots, userGroups, percentage } = stage.selector;
    const rate = percentage / 100;
    if (tenants.length > 0) {
      tenantCohorts.push({
        name: stage.name,
        tenants: [...tenants],
        botIds: [...bots],
        userGroups: [...userGroups],
        sampleRate: rate,
      });
    } else if (bots.length > 0 || userGroups.length > 0) {
      cohorts.push({ name: stage.name, botIds: [...bots], userGroups: [...userGroups], sampleRate: rate });
    } else {
      // A percentage-only stage is a sticky share of all sessions.
      sampleRate = Math.max(sampleRate, rate);
    }
  }
  const document: CaptureDocument = {
    enabled: capture.enabled,
    sampleRate,
    stage: current < 0 ? "full" : (stages[current]?.name ?? "full"),
    cohorts,
    optOut: {
      userIds: [...capture.optOut.users],
      botIds: [...capture.optOut.bots],
      tenantIds: [...capture.optOut.tenants],
    },
    tenantCohorts,
  };
  if (canary !== undefined && canary.weight > 0) document.canary = canary;
  return document;
}

/** The file text published in the ConfigMap (YAML; ingest accepts YAML or JSON). */
export function renderCaptureText(document: CaptureDocument): string {
  return `# Published by sessiontrack-operator; edit the SessionStore, not this file.\n${stringify(document)}`;
}
