/**
 * §10 step 5: the semantic rules of spec/packet-1.1.md §6, which a JSON Schema cannot state,
 * on a body that satisfied the schema, and the registered extensions of format 1.1 (§3.12).
 */
import { M2ktError } from "./errors.js";
import { REGISTERED_EXTENSIONS, validateExtensionData } from "./schema.js";
import { aligned, DTYPE_SIZE } from "./tensors.js";
import type { Body, DerivationData, OperatorsData, TensorDescriptor } from "./types.js";

/** The registered relations (§3.5); others must start with `x-`. */
const RELATIONS: ReadonlySet<string> = new Set(["is_a", "part_of", "implies", "similar_to", "precedes", "inverse_of", "composes_to"]);

/** Extensions this reader understands: those registered by format 1.1 (§9, §3.12). */
const UNDERSTOOD_EXTENSIONS: ReadonlySet<string> = new Set(Object.keys(REGISTERED_EXTENSIONS));

/**
 * Checks the rules of §6 and throws the first violation.
 *
 * @param path JSON Pointer of the body in the packet's JSON form (`/body`).
 * @param floatPaths JSON Pointers, relative to the body, of the values that are floats (the
 *   registered extensions' integer fields must not hold one).
 * @throws M2ktError `DUPLICATE_ID`, `DANGLING_REFERENCE`, `DIMENSION_MISMATCH`,
 *   `UNKNOWN_RELATION`, `ISA_CYCLE`, `TENSOR_DTYPE`, `TENSOR_SHAPE`, `TENSOR_LAYOUT`,
 *   `CRITICAL_EXTENSION` or, for a registered extension's data, `SCHEMA_VIOLATION`.
 */
export function checkSemantics(body: Body, path: string, floatPaths: ReadonlySet<string>): void {
  const concepts = uniqueIds(
    body.concepts.map((c) => c.id),
    `${path}/concepts`,
    "id",
  );
  uniqueIds(
    body.traces.map((t) => t.id),
    `${path}/traces`,
    "id",
  );
  uniqueIds(
    body.anchors.map((a) => a.id),
    `${path}/anchors`,
    "id",
  );
  const tensors = new Map(body.tensors.map((t) => [t.name, t]));
  uniqueIds(
    body.tensors.map((t) => t.name),
    `${path}/tensors`,
    "name",
  );
  // The descriptors first: a shape is only worth comparing once it agrees with its length (§10).
  checkDescriptors(body.tensors, `${path}/tensors`);

  const concept = (id: string, at: string): void => {
    if (!concepts.has(id)) throw new M2ktError("DANGLING_REFERENCE", `no concept ${JSON.stringify(id)}`, at);
  };
  const tensor = (name: string, at: string): TensorDescriptor => {
    const found = tensors.get(name);
    if (found === undefined) throw new M2ktError("DANGLING_REFERENCE", `no tensor ${JSON.stringify(name)}`, at);
    return found;
  };
  const shaped = (name: string, shape: readonly number[], at: string): void => {
    const actual = tensor(name, at).shape;
    if (actual.length !== shape.length || actual.some((n, i) => n !== shape[i])) {
      throw new M2ktError(
        "DIMENSION_MISMATCH",
        `tensor ${JSON.stringify(name)} has shape [${actual.join(", ")}], expected [${shape.join(", ")}]`,
        at,
      );
    }
  };

  const d = body.teacher.latent_dim;
  body.concepts.forEach((c, i) => {
    const at = `${path}/concepts/${i}`;
    shaped(c.embedding, [d], `${at}/embedding`);
    if (c.manifold !== undefined) {
      const k = tensor(c.manifold.directions, `${at}/manifold/directions`).shape[0] ?? -1;
      shaped(c.manifold.directions, [k, d], `${at}/manifold/directions`);
      shaped(c.manifold.variances, [k], `${at}/manifold/variances`);
    }
  });
  body.graph.edges.forEach((e, i) => {
    concept(e.source, `${path}/graph/edges/${i}/source`);
    concept(e.target, `${path}/graph/edges/${i}/target`);
    if (!RELATIONS.has(e.relation) && !e.relation.startsWith("x-")) {
      throw new M2ktError(
        "UNKNOWN_RELATION",
        `relation ${JSON.stringify(e.relation)} is neither registered nor x-`,
        `${path}/graph/edges/${i}/relation`,
      );
    }
  });
  body.traces.forEach((t, i) => {
    t.steps.forEach((s, j) => concept(s.concept, `${path}/traces/${i}/steps/${j}/concept`));
    if (t.states !== undefined) shaped(t.states, [t.steps.length, d], `${path}/traces/${i}/states`);
  });
  body.anchors.forEach((a, i) => {
    shaped(a.state, [d], `${path}/anchors/${i}/state`);
    if (a.concept !== undefined) concept(a.concept, `${path}/anchors/${i}/concept`);
  });
  body.safety.protected_concepts?.forEach((id, i) => concept(id, `${path}/safety/protected_concepts/${i}`));
  checkIsaAcyclic(body, path);
  for (const [name, extension] of Object.entries(body.extensions ?? {})) {
    if (extension.critical && !UNDERSTOOD_EXTENSIONS.has(name)) {
      throw new M2ktError(
        "CRITICAL_EXTENSION",
        `critical extension ${JSON.stringify(name)} is not understood`,
        `${path}/extensions/${name.replace(/~/g, "~0").replace(/\//g, "~1")}`,
      );
    }
  }
  checkRegisteredExtensions(body, path, floatPaths, concept);
}

/** The registered extensions' data (§3.12): its schema first, then the edge count and the concept ids. */
function checkRegisteredExtensions(
  body: Body,
  path: string,
  floatPaths: ReadonlySet<string>,
  concept: (id: string, at: string) => void,
): void {
  const extensions = body.extensions ?? {};
  for (const name of Object.keys(REGISTERED_EXTENSIONS)) {
    const extension = Object.hasOwn(extensions, name) ? extensions[name] : undefined;
    if (extension === undefined) continue;
    const at = `${path}/extensions/${name}/data`;
    validateExtensionData(name, extension.data, floatPaths, at);
    if (name === "derivation") {
      const edges = (extension.data as unknown as DerivationData).edges;
      if (edges.length !== body.graph.edges.length) {
        throw new M2ktError(
          "SCHEMA_VIOLATION",
          `${edges.length} edge derivations for ${body.graph.edges.length} graph edges`,
          `${at}/edges`,
        );
      }
    } else if (name === "operators") {
      (extension.data as unknown as OperatorsData).entries.forEach((entry, i) => {
        for (const field of ["operator", "source", "target"] as const) concept(entry[field], `${at}/entries/${i}/${field}`);
      });
    }
  }
}

function uniqueIds(ids: readonly string[], at: string, field: string): Set<string> {
  const seen = new Set<string>();
  ids.forEach((id, i) => {
    if (seen.has(id)) throw new M2ktError("DUPLICATE_ID", `${JSON.stringify(id)} appears twice`, `${at}/${i}/${field}`);
    seen.add(id);
  });
  return seen;
}

/** The is_a edges form a DAG: no self-loop, no cycle (Kahn's algorithm). */
function checkIsaAcyclic(body: Body, path: string): void {
  const successors = new Map<string, string[]>();
  const indegree = new Map<string, number>();
  body.graph.edges.forEach((e) => {
    if (e.relation !== "is_a") return;
    const targets = successors.get(e.source);
    if (targets === undefined) successors.set(e.source, [e.target]);
    else targets.push(e.target);
    indegree.set(e.target, (indegree.get(e.target) ?? 0) + 1);
    if (!indegree.has(e.source)) indegree.set(e.source, 0);
  });
  const ready = [...indegree].filter(([, n]) => n === 0).map(([id]) => id);
  let done = 0;
  for (let id = ready.pop(); id !== undefined; id = ready.pop()) {
    done++;
    for (const next of successors.get(id) ?? []) {
      const n = (indegree.get(next) as number) - 1;
      indegree.set(next, n);
      if (n === 0) ready.push(next);
    }
  }
  if (done < indegree.size) {
    const i = body.graph.edges.findIndex(
      (e) => e.relation === "is_a" && (indegree.get(e.source) as number) > 0 && (indegree.get(e.target) as number) > 0,
    );
    throw new M2ktError("ISA_CYCLE", "the is_a edges contain a cycle", `${path}/graph/edges/${i}`);
  }
}

/** `scale` exactly for i8, `length` from dtype and shape, offsets packed (§3.10, §4.3). */
function checkDescriptors(descriptors: readonly TensorDescriptor[], path: string): void {
  let next = 0;
  descriptors.forEach((t, i) => {
    const at = `${path}/${i}`;
    if ((t.scale !== undefined) !== (t.dtype === "i8")) {
      throw new M2ktError("TENSOR_DTYPE", t.dtype === "i8" ? "an i8 tensor needs a scale" : `a ${t.dtype} tensor has no scale`, at);
    }
    const expected = t.shape.reduce((n, dim) => n * BigInt(dim), BigInt(DTYPE_SIZE[t.dtype]));
    if (expected !== BigInt(t.length)) {
      throw new M2ktError(
        "TENSOR_SHAPE",
        `length ${t.length}, but ${t.dtype} [${t.shape.join(", ")}] takes ${expected} bytes`,
        `${at}/length`,
      );
    }
    if (t.offset !== next)
      throw new M2ktError("TENSOR_LAYOUT", `offset ${t.offset}, expected ${next} (packed, 64-aligned)`, `${at}/offset`);
    next = aligned(t.offset + t.length);
  });
}
