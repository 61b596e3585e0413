// Compiled with `tsc --noEmit --strict` by scripts/test-js.sh: the declarations describe the
// API as the tests use it (this file is never run).
import { Umpire, type Created, type Envelope, type UmpireError, type Status } from "../umpire.js";

async function play(url: string): Promise<number> {
  const client: Umpire = await new Umpire(url).connect();
  client.onStatus((status: Status, detail: string) => console.log(status, detail));
  client.onEvent((game: number, env: Envelope) => console.log(game, env.seq, env.body));
  const game: Created = await client.create("tally", null);
  try {
    await client.command(game.game, { add: 1 });
  } catch (e) {
    const refused = e as UmpireError;
    if (refused.code === "rejected" && typeof refused.reason === "object") return -1;
  }
  const ok = await client.command(game.game, { add: 2 });
  client.close();
  return ok.seq ?? 0;
}

export { play };
