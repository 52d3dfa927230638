import { render } from "preact";
import "./styles.css";
import { captureLink } from "./email";
import { resume } from "./session";
import { App } from "./views/App";

if (location.pathname === "/email") captureLink();
else resume();
render(<App />, document.getElementById("app")!);
