/** Where each kind the operator touches lives in the API, so paths need no discovery round-trip. */
export interface ResourceType {
  group: string;
  version: string;
  plural: string;
  namespaced: boolean;
}

const RESOURCES: Record<string, ResourceType> = {
  "sessiontrack.io/v1alpha1/SessionStore": {
    group: "sessiontrack.io",
    version: "v1alpha1",
    plural: "sessionstores",
    namespaced: true,
  },
  "apps/v1/StatefulSet": { group: "apps", version: "v1", plural: "statefulsets", namespaced: true },
  "apps/v1/Deployment": { group: "apps", version: "v1", plural: "deployments", namespaced: true },
  "apps/v1/ControllerRevision": {
    group: "apps",
    version: "v1",
    plural: "controllerrevisions",
    namespaced: true,
  },
  "v1/Service": { group: "", version: "v1", plural: "services", namespaced: true },
  "v1/ConfigMap": { group: "", version: "v1", plural: "configmaps", namespaced: true },
  "v1/Secret": { group: "", version: "v1", plural: "secrets", namespaced: true },
  "v1/Pod": { group: "", version: "v1", plural: "pods", namespaced: true },
  "v1/PersistentVolumeClaim": {
    group: "",
    version: "v1",
    plural: "persistentvolumeclaims",
    namespaced: true,
  },
  "v1/Event": { group: "", version: "v1", plural: "events", namespaced: true },
  "v1/ServiceAccount": { group: "", version: "v1", plural: "serviceaccounts", namespaced: true },
  "v1/Namespace": { group: "", version: "v1", plural: "namespaces", namespaced: false },
  "coordination.k8s.io/v1/Lease": {
    group: "coordination.k8s.io",
    version: "v1",
    plural: "leases",
    namespaced: true,
  },
  "apiextensions.k8s.io/v1/CustomResourceDefinition": {
    group: "apiextensions.k8s.io",
    version: "v1",
    plural: "customresourcedefinitions",
    namespaced: false,
  },
};

/** The API location of `apiVersion`/`kind`; throws naming the kind when it is not one the operator knows. */
export function resourceType(apiVersion: string, kind: string): ResourceType {
  const type = RESOURCES[`${apiVersion}/${kind}`];
  if (type === undefined) throw new Error(`kubernetes facade: unknown kind ${apiVersion}/${kind}`);
  return type;
}

/** The collection path (`/apis/apps/v1/namespaces/ns/statefulsets`), or one object's path with `name`. */
export function resourcePath(
  apiVersion: string,
  kind: string,
  namespace: string | undefined,
  name?: string,
): string {
  const type = resourceType(apiVersion, kind);
  const base = type.group === "" ? `/api/${type.version}` : `/apis/${type.group}/${type.version}`;
  const scope =
    type.namespaced && namespace !== undefined ? `/namespaces/${encodeURIComponent(namespace)}` : "";
  const item = name === undefined ? "" : `/${encodeURIComponent(name)}`;
  return `${base}${scope}/${type.plural}${item}`;
}
