import type { AnyStateMachine, AnyStateNode, InspectionEvent } from 'xstate';

/** A transition branch is identified by its source state, its event, and its position among that event's branches. */
function branchKey(source: AnyStateNode, eventType: string, index: number): string {
  return `${source.id} --${eventType || 'always'}#${index}`;
}

export function allTransitionBranches(machine: AnyStateMachine): string[] {
  const keys: string[] = [];
  const visit = (node: AnyStateNode) => {
    for (const [eventType, branches] of node.transitions) {
      for (let i = 0; i < branches.length; i++) keys.push(branchKey(node, eventType, i));
    }
    for (let i = 0; i < (node.always?.length ?? 0); i++) keys.push(branchKey(node, '', i));
    for (const child of Object.values(node.states) as AnyStateNode[]) visit(child);
  };
  visit(machine.root);
  return keys.sort();
}

/** An XState `inspect` observer that records every transition branch actually taken. */
export function createCoverageRecorder() {
  const taken = new Set<string>();
  const inspect = (event: InspectionEvent) => {
    if (event.type !== '@xstate.microstep') return;
    for (const t of event._transitions as any[]) {
      const source = t.source as AnyStateNode;
      const always = source.always ?? [];
      const alwaysIndex = always.indexOf(t);
      if (alwaysIndex >= 0) {
        taken.add(branchKey(source, '', alwaysIndex));
        continue;
      }
      const branches = source.transitions.get(t.eventType) ?? [];
      taken.add(branchKey(source, t.eventType, branches.indexOf(t)));
    }
  };
  return { inspect, taken };
}
