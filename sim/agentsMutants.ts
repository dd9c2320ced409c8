/**
 * Deliberately broken agent code, built by injection (hooks and a replaced call; nothing in src/ is modified), to
 * show the agent checkers catch real bugs. Used by test/sim/agents.test.ts and the pipeline property.
 */
import type { CommitOp, Json } from '../src/adapters/LeaseStore.js';
import type { AgentRegistry } from '../src/agents/registry.js';
import type { TaskRecord } from '../src/agents/schema.js';
import type { SweeperOptions } from '../src/agents/sweeper.js';
import type { AgentMutants } from './agents.js';

/** The sweep commit without its lease check-op: a deposed leader's stale plan can land. */
export function withoutLeaseCheck(options: SweeperOptions, { keepIsLeader = false } = {}): SweeperOptions {
  const { isLeader, beforeCommit, ...rest } = options;
  return {
    ...rest,
    ...(keepIsLeader && isLeader ? { isLeader } : {}),
    beforeCommit: async (ops) => {
      await beforeCommit?.(ops);
      const mutable = ops as CommitOp[];
      const i = mutable.findIndex((op) => op.key === options.registry.keys.lease && op.value === undefined);
      if (i >= 0) mutable.splice(i, 1);
    },
  };
}

/**
 * A sweeper with no epoch fencing at all: the lease read at the top of each sweep accepts any holder, the commit has
 * no lease check-op, no isLeader() before it, and it keeps sweeping after losing leadership (with its old token).
 */
export const unfencedSweeper: AgentMutants = {
  ignoreLeadershipLoss: true,
  sweeper: (options) => {
    const registry = options.registry;
    registry.currentLease = async () => {
      const lease = await registry.readLease();
      if (!lease) throw new Error('no lease record');
      return lease;
    };
    return withoutLeaseCheck(options);
  },
};

/** Completion that skips the claim check (token, holder, state): a presumed-dead worker's late completion lands. */
export async function completeWithoutClaimCheck(registry: AgentRegistry, agentId: string, taskId: string, claimToken: number): Promise<TaskRecord> {
  return registry.retry('complete', async () => {
    const { board, version } = await registry.readBoard();
    const task = board.tasks[taskId];
    if (!task) throw new Error(`unknown task ${taskId}`);
    const done: TaskRecord = { ...task, state: 'completed', completedBy: agentId, completedToken: claimToken, completedAt: 'mutant', result: null };
    await registry.store.compareAndSet(registry.keys.board, version, { ...board, tasks: { ...board.tasks, [taskId]: done } } as unknown as Json);
    return done;
  });
}

/**
 * A broken retirement (found in review): the index write of a retiring sweep keeps only the retired ids instead of
 * dropping them — an inverted filter — so every other agent, active or not, silently leaves the index (and an agent
 * the sweep put back is dropped too). Injected in `beforeCommit`: the retired ids are those of the index this
 * sweeper last read that its planned index write leaves out.
 */
export const invertedRetirement: AgentMutants = {
  sweeper: (options) => {
    const registry = options.registry;
    const readIndexedAgents = registry.readIndexedAgents.bind(registry);
    let lastRead: readonly string[] = [];
    registry.readIndexedAgents = async () => {
      const read = await readIndexedAgents();
      lastRead = read.index.ids;
      return read;
    };
    const { beforeCommit } = options;
    return {
      ...options,
      beforeCommit: async (ops) => {
        const read = lastRead;
        await beforeCommit?.(ops);
        const mutable = ops as CommitOp[];
        const i = mutable.findIndex((op) => op.key === registry.keys.index && op.value !== undefined);
        if (i < 0) return;
        const planned = new Set((mutable[i]!.value as { ids: string[] }).ids);
        const retired = new Set(read.filter((id) => !planned.has(id)));
        if (retired.size === 0) return;
        mutable[i] = { ...mutable[i]!, value: { ids: read.filter((id) => retired.has(id)) } };
      },
    };
  },
};

/**
 * A hasty retention: the sweeper plans with every retention period divided by `factor` (10 by default), so it retires
 * gone and stale agents long before their time. Injected through the options the sweeper is built with.
 */
export function hastyRetention(factor = 10): AgentMutants {
  const cut = (ms: number | null) => (ms === null ? null : ms / factor);
  return {
    sweeper: (options) => (options.retention ? { ...options, retention: { goneMs: cut(options.retention.goneMs), staleMs: cut(options.retention.staleMs) } } : options),
  };
}

export const agentMutants: Record<string, { readonly mutants: AgentMutants; readonly caughtBy: string }> = {
  'sweeper without epoch fencing (lease read, check-op, isLeader, leadership scope all removed)': {
    mutants: unfencedSweeper,
    caughtBy: 'no-stale-epoch-requeue',
  },
  'completion without the claim-token check': {
    mutants: { complete: completeWithoutClaimCheck },
    caughtBy: 'no-task-completed-twice',
  },
  'retirement with an inverted filter (the index keeps only the retired ids)': {
    mutants: invertedRetirement,
    caughtBy: 'no-active-agent-retired',
  },
  'retirement planned with retention divided by 10': {
    mutants: hastyRetention(10),
    caughtBy: 'retention-waited',
  },
};

/**
 * The agents library as it was before the claim recovery (the old behaviour, for the "no task lost" checker to
 * catch): `register` leaves a previous incarnation's claims on the board, `claim` does not hand back a claim its
 * caller never learnt of, and the heartbeat never releases one. A naive worker then loses tasks.
 */
export const withoutClaimRecovery: AgentMutants = {
  agent: (agent) => {
    const registry = agent.registry;
    const register = registry.register.bind(registry);
    const claim = registry.claim.bind(registry);
    registry.register = (identity) => register(identity, { releasePrevious: false });
    registry.claim = (agentId, filter, session) => claim(agentId, filter, { incarnation: session?.incarnation });
    registry.releaseUnknownClaims = async () => [];
  },
};
