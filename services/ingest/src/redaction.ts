import { createRedactor, type Redactor } from "@sessiontrack/redaction";
import type { TenantDirectory } from "@sessiontrack/runtime";

/** Each tenant's Redactor, compiled once at start-up. */
export type RedactorFor = (tenant: string) => Redactor;

/**
 * Compiles every tenant's redaction settings from the tenants file; a bad rule fails
 * start-up with a ConfigError naming the tenant and the rule. A tenant without settings
 * gets the default: every built-in detector on, masking.
 */
export function loadTenantRedactors(tenants: TenantDirectory): RedactorFor {
  const byTenant = new Map<string, Redactor>();
  for (const tenant of tenants.tenantNames()) {
    byTenant.set(tenant, createRedactor(tenant, tenants.redactionSettings(tenant)));
  }
  const fallback = createRedactor("(default)");
  return (tenant) => byTenant.get(tenant) ?? fallback;
}
