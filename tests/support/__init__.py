"""What test modules share, one module per kind of thing: `polling` (eventually), `servers`
(Server, serving), the webhook `receiver`, and data and helpers per feature. Test modules
import helpers from here only, never from one another; fixtures stay in conftest files."""
