// `fenced-leader <command>`: each command lives in its own module and is loaded on demand.
const commands: Record<string, () => Promise<{ run(argv: string[]): Promise<number> }>> = {
  sim: () => import('./sim.js'),
  replay: () => import('./replay.js'),
  view: () => import('./view.js'),
};

const [name, ...rest] = process.argv.slice(2);
if (!name || !(name in commands) || name === '--help') {
  console.error(`usage: fenced-leader <${Object.keys(commands).join('|')}> [options]  (add --help after a command for its options)`);
  process.exitCode = name && name !== '--help' ? 2 : 0;
} else {
  const command = await commands[name]!();
  process.exitCode = await command.run(rest);
}
