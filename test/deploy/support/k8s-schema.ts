// Offline validation of rendered objects against the Kubernetes API, twice over:
// 1. kubernetes-models' validate(): the API's JSON schemas (types, required fields, formats such
//    as quantities, enums);
// 2. the same package's TypeScript declarations, with each object written as a typed literal and
//    compiled: an unknown field (a typo such as readOnlyRootFileSystem, which the schemas let
//    through and an API server with strict field validation refuses) is a compile error.

import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as ts from 'typescript';
import { describe, type K8sObject } from './k8s-objects';

interface Model {
  validate(): void;
}
type ModelClass = new (data: unknown) => Model;

function modelModule(modelsDir: string, o: K8sObject): string {
  return join(modelsDir, o.apiVersion, o.kind);
}

/** Problems found by the JSON schemas; empty when every object is valid. */
export function schemaProblems(modelsDir: string, objects: K8sObject[]): string[] {
  const problems: string[] = [];
  for (const o of objects) {
    let Model: ModelClass | undefined;
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      Model = (require(modelModule(modelsDir, o)) as Record<string, ModelClass>)[o.kind];
    } catch {
      Model = undefined;
    }
    if (!Model) {
      problems.push(`${describe(o)}: no schema for ${o.apiVersion} ${o.kind}`);
      continue;
    }
    try {
      new Model(o).validate();
    } catch (err) {
      problems.push(`${describe(o)}: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return problems;
}

/** Unknown fields (and type mismatches) found by compiling every object as a typed literal. */
export function fieldProblems(modelsDir: string, objects: K8sObject[]): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'ferry-k8s-fields-'));
  try {
    const lines: string[] = [];
    const owners: { from: number; to: number; object: K8sObject }[] = [];
    objects.forEach((o, i) => {
      lines.push(`import type { I${o.kind} as T${i} } from 'kubernetes-models/${o.apiVersion}/${o.kind}';`);
    });
    let line = lines.length; // each import is one line
    objects.forEach((o, i) => {
      const literal = `export const o${i}: T${i} = ${JSON.stringify(o, null, 1)};`;
      lines.push(literal);
      const height = literal.split('\n').length;
      owners.push({ from: line, to: line + height, object: o });
      line += height;
    });
    const file = join(dir, 'objects.ts');
    writeFileSync(file, lines.join('\n'));
    const program = ts.createProgram([file], {
      strict: true,
      noEmit: true,
      skipLibCheck: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.Node16,
      moduleResolution: ts.ModuleResolutionKind.Node16,
      types: [],
      baseUrl: dir,
      paths: { 'kubernetes-models/*': [join(modelsDir, '*')] },
    });
    return ts.getPreEmitDiagnostics(program).map((d) => {
      const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
      if (!d.file || d.start === undefined) return message;
      const { line } = d.file.getLineAndCharacterOfPosition(d.start);
      const owner = owners.find((x) => line >= x.from && line < x.to);
      return `${owner ? describe(owner.object) : `line ${line + 1}`}: ${message}`;
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
