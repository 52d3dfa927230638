import { render } from "preact";
import "./styles.css";
import { resume } from "./session";
import { App } from "./views/App";

resume();
render(<App />, document.getElementById("app")!);
