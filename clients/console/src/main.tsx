import { render } from "preact";
import "./styles.css";
import { redeemLink } from "./email";
import { resume } from "./session";
import { App } from "./views/App";

if (location.pathname === "/email") void redeemLink();
else resume();
render(<App />, document.getElementById("app")!);
